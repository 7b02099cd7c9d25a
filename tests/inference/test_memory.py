import pytest

from synthseg.inference import memory
from synthseg.inference.memory import NO_LIMIT, available_memory, memory_needed

GB = 1024 ** 3


def _machine(tmp_path, available_kb, cgroup_lines):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal:       {4 * available_kb} kB\nMemAvailable:   {available_kb} kB\n")
    (proc / "self" / "cgroup").write_text("\n".join(cgroup_lines) + "\n")
    return proc, tmp_path / "cgroup"


def _write(folder, **files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(str(text) + "\n")


def test_available_memory_is_memavailable_without_a_cgroup_limit(tmp_path):
    proc, root = _machine(tmp_path, 8 * 1024 ** 2, ["0::/"])
    assert available_memory(proc, root) == 8 * GB  # no cgroup files at all
    _write(root, memory_max="max", memory_current=GB)  # cgroup v2, unlimited
    assert available_memory(proc, root) == 8 * GB


def test_a_cgroup_v2_job_limit_caps_it_counting_reclaimable_cache_as_free(tmp_path):
    proc, root = _machine(tmp_path, 64 * 1024 ** 2, ["0::/slurm/job_7/step_0"])
    _write(root / "slurm" / "job_7", memory_max=4 * GB, memory_current=3 * GB)
    (root / "slurm" / "job_7" / "memory.stat").write_text(f"anon {2 * GB}\ninactive_file {GB // 2}\n")
    _write(root / "slurm" / "job_7" / "step_0", memory_max="max", memory_current=GB)
    assert available_memory(proc, root) == pytest.approx(1.5 * GB)  # 4 - 3 + 0.5 GB, the tightest level


def test_a_cgroup_v1_container_limit_caps_it(tmp_path):
    proc, root = _machine(tmp_path, 64 * 1024 ** 2, ["4:memory:/docker/abc", "1:cpu:/docker/abc", "0::/"])
    _write(root / "memory", memory_limit_in_bytes=6 * GB, memory_usage_in_bytes=2 * GB)  # the container's own view
    _write(root / "memory" / "docker", memory_limit_in_bytes=NO_LIMIT, memory_usage_in_bytes=9 * GB)
    assert available_memory(proc, root) == 4 * GB


def test_available_memory_is_unknown_where_the_system_does_not_say(tmp_path):
    assert available_memory(tmp_path / "no_proc", tmp_path / "no_cgroup") is None


def test_memory_needed_grows_with_the_scan_the_crop_tta_and_posteriors():
    base = memory_needed(10e6, 2e6, tta=False)
    assert memory_needed(20e6, 2e6, tta=False) > base and memory_needed(10e6, 4e6, tta=False) > base
    assert memory_needed(10e6, 2e6, tta=True) > base
    assert memory_needed(10e6, 2e6, tta=False, posteriors=True) > base


def test_room_since_a_mark_adds_what_the_process_took_since_and_its_reusable_heap(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 2 * GB)
    resident = iter([1 * GB, 1.5 * GB])
    monkeypatch.setattr(memory, "_resident", lambda: next(resident))
    monkeypatch.setattr(memory, "_heap_free", lambda: 0.25 * GB)
    mark = memory.memory_mark()  # 1 GB resident, 0.25 GB free in the heap
    assert memory.room_since(mark) == 2 * GB + 0.5 * GB + 0.25 * GB
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert memory.room_since(mark) is None
