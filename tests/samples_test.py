"""The CPU sample kept between two stats calls."""

import json
import os

import pytest

from containerhooks import paths
from containerhooks import samples

VM = "6f1383a1-ea92-44bf-a721-082563ac560f"


@pytest.fixture
def samples_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "SAMPLES_DIR", str(tmp_path))
    return tmp_path


def test_first_sample_has_no_base(samples_dir):
    cache = samples.Cache.load()
    assert cache.interval(VM, "c1", 100.0, 5, 6) is None


def test_base_is_the_previous_sample(samples_dir):
    cache = samples.Cache.load()
    cache.interval(VM, "c1", 100.0, 5, 6)
    cache.save()

    cache = samples.Cache.load()
    assert cache.interval(VM, "c1", 115.0, 50, 60) == [100.0, 5, 6]


def test_burst_measured_against_the_sample_before(samples_dir):
    # Engine asks for one VM right after the periodic poll: the interval
    # stays the poll's, never a few milliseconds.
    cache = samples.Cache()
    cache.interval(VM, "c1", 100.0, 5, 6)
    cache.interval(VM, "c1", 115.0, 50, 60)

    assert cache.interval(VM, "c1", 115.2, 51, 61) == [100.0, 5, 6]
    assert cache.entries[VM]["last"] == [115.0, 50, 60]


def test_new_container_starts_afresh(samples_dir):
    cache = samples.Cache()
    cache.interval(VM, "c1", 100.0, 5, 6)
    assert cache.interval(VM, "c2", 115.0, 1, 1) is None


def test_keep_only(samples_dir):
    cache = samples.Cache()
    cache.interval(VM, "c1", 100.0, 5, 6)
    cache.interval("other", "c9", 100.0, 5, 6)
    cache.keep_only({VM})
    assert list(cache.entries) == [VM]


def test_corrupt_file_starts_afresh(samples_dir):
    (samples_dir / samples.FILE).write_text("{oops")
    assert samples.Cache.load().entries == {}


def test_unwritable_directory_is_not_an_error(samples_dir, monkeypatch):
    monkeypatch.setattr(paths, "SAMPLES_DIR",
                        str(samples_dir / "missing"))
    cache = samples.Cache()
    cache.interval(VM, "c1", 100.0, 5, 6)
    cache.save()        # logged, not raised


def test_saved_atomically(samples_dir):
    cache = samples.Cache()
    cache.interval(VM, "c1", 100.0, 5, 6)
    cache.save()
    assert sorted(os.listdir(str(samples_dir))) == [samples.FILE]
    with open(str(samples_dir / samples.FILE)) as f:
        assert VM in json.load(f)


def test_cgroup_remembered_for_the_same_container_and_process(samples_dir):
    cache = samples.Cache()
    cache.remember_cgroup(VM, "c1", 42, 1, "/cpu/docker/c1",
                          "/memory/docker/c1")
    cache.save()

    cache = samples.Cache.load()
    assert cache.cgroup(VM, "c1", 42) == [1, "/cpu/docker/c1",
                                          "/memory/docker/c1"]
    assert cache.cgroup(VM, "c1", 43) is None       # another process
    assert cache.cgroup(VM, "c2", 42) is None       # another container
    cache.forget_cgroup(VM)
    assert cache.cgroup(VM, "c1", 42) is None
