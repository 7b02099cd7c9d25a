from synthseg.synthesis.tissues import CONTRASTS, TISSUES


def test_t1_priors_keep_the_brightness_order_of_real_t1_scans():
    order = ["csf", "grey_matter", "limbic_grey", "deep_grey", "thalamus", "pallidum", "white_matter"]
    t1 = [TISSUES[name].t1 for name in order]
    assert t1 == sorted(t1) and len(set(t1)) == len(t1)


def test_t2_and_pd_priors_keep_csf_brightest_in_the_brain():
    brain = ["grey_matter", "limbic_grey", "deep_grey", "thalamus", "pallidum", "white_matter"]
    for contrast in ("t2", "pd"):
        assert all(getattr(TISSUES["csf"], contrast) > getattr(TISSUES[t], contrast) for t in brain)


def test_every_tissue_has_an_mr_value_in_range_and_an_ordered_ct_range():
    for name, tissue in TISSUES.items():
        assert all(0 <= getattr(tissue, c) <= 255 for c in CONTRASTS if c != "ct"), name
        assert tissue.ct[0] < tissue.ct[1], name
