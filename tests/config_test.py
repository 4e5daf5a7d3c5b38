"""The host configuration file, containers.conf.

Written by the host's admin, not by VM owners; a mistake in it must stop
the hook with a message naming the file and the option, never be ignored
or crash with a traceback.
"""

import os
import subprocess
import sys

import pytest

from containerhooks import config
from containerhooks import errors

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(tmp_path, text, encoding="utf-8"):
    path = tmp_path / "containers.conf"
    path.write_bytes(text.encode(encoding))
    return str(path)


def assert_default_values(conf):
    assert conf.engines == ("docker", "podman")
    assert conf.sockets == {"docker": "/var/run/docker.sock",
                            "podman": "/run/podman/podman.sock"}
    assert conf.api_timeout == 60
    assert conf.pull_timeout == 600
    assert conf.stop_timeout == 10
    assert conf.pids_limit == 1024
    assert conf.log_max_size == "10m"
    assert conf.log_max_files == 3
    assert conf.writable_layer_size == "10g"
    assert conf.nofile == 8192
    assert conf.nproc == 4096
    assert conf.capabilities == config.BASE_CAPABILITIES
    assert conf.init is True
    assert conf.placeholder_memory_mib == 16
    assert conf.storage_roots == ("/rhev/data-center",)
    assert conf.blank_check_timeout == 120
    assert conf.image_archive_max_size == 10 * 1024 ** 3
    assert conf.image_load_timeout == 600
    assert conf.migration == "restart"
    assert conf.migration_wait == 60
    assert conf.auth_files == {"docker": "/root/.docker/config.json",
                               "podman": "/etc/containers/auth.json"}
    assert conf.allowed_images == ()
    assert conf.require_digest is False
    assert conf.pull_policy == "missing"


def test_missing_file_means_defaults(tmp_path):
    path = str(tmp_path / "missing.conf")
    conf = config.load(path)
    assert_default_values(conf)
    assert conf.path == path


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("# nothing set\n[containers]\n", id="empty-section"),
    pytest.param("[other]\nfoo = bar\n", id="other-section"),
])
def test_defaults(tmp_path, text):
    assert_default_values(config.load(write(tmp_path, text)))


# option = text, the Config field and the value it must have.
OPTIONS = [
    pytest.param("engines = docker", "engines", ("docker",),
                 id="engines-one"),
    pytest.param("engines = podman, docker", "engines", ("podman", "docker"),
                 id="engines-order"),
    pytest.param("engines = podman docker", "engines", ("podman", "docker"),
                 id="engines-spaces"),
    pytest.param("engines =", "engines", (), id="engines-none"),
    pytest.param("docker_socket = /srv/docker.sock", "sockets",
                 {"docker": "/srv/docker.sock",
                  "podman": "/run/podman/podman.sock"}, id="docker-socket"),
    pytest.param("podman_socket = /run/user/0/podman/podman.sock", "sockets",
                 {"docker": "/var/run/docker.sock",
                  "podman": "/run/user/0/podman/podman.sock"},
                 id="podman-socket"),
    pytest.param("api_timeout = 30", "api_timeout", 30, id="api-timeout"),
    pytest.param("api_timeout = 3600", "api_timeout", 3600,
                 id="api-timeout-max"),
    pytest.param("pull_timeout = 86400", "pull_timeout", 86400,
                 id="pull-timeout"),
    pytest.param("stop_timeout = 0", "stop_timeout", 0, id="stop-timeout-0"),
    pytest.param("pids_limit = 16", "pids_limit", 16, id="pids-limit-min"),
    pytest.param("log_max_size = 64k", "log_max_size", "64k",
                 id="log-size-min"),
    pytest.param("log_max_size = 1G", "log_max_size", "1g",
                 id="log-size-case"),
    pytest.param("log_max_size =", "log_max_size", "", id="log-size-none"),
    pytest.param("log_max_files = 1", "log_max_files", 1, id="log-files"),
    pytest.param("writable_layer_size = 20g", "writable_layer_size", "20g",
                 id="layer-size"),
    pytest.param("writable_layer_size = 1048576", "writable_layer_size",
                 "1048576", id="layer-size-bytes"),
    pytest.param("writable_layer_size =", "writable_layer_size", "",
                 id="layer-size-none"),
    pytest.param("nofile = 65536", "nofile", 65536, id="nofile"),
    pytest.param("nproc = 512", "nproc", 512, id="nproc"),
    pytest.param("placeholder_memory_mib = 32", "placeholder_memory_mib", 32,
                 id="placeholder-memory"),
    pytest.param("init = false", "init", False, id="init-false"),
    pytest.param("init = no", "init", False, id="init-no"),
    pytest.param("init = 0", "init", False, id="init-0"),
    pytest.param("init = Off", "init", False, id="init-off"),
    pytest.param("init = yes", "init", True, id="init-yes"),
    pytest.param("init = TRUE", "init", True, id="init-true"),
    pytest.param("extra_capabilities = NET_RAW", "capabilities",
                 config.BASE_CAPABILITIES + ("NET_RAW",), id="caps-one"),
    pytest.param("extra_capabilities = cap_sys_nice, CAP_NET_RAW",
                 "capabilities",
                 config.BASE_CAPABILITIES + ("SYS_NICE", "NET_RAW"),
                 id="caps-prefix-and-case"),
    pytest.param("extra_capabilities = CHOWN NET_RAW NET_RAW",
                 "capabilities", config.BASE_CAPABILITIES + ("NET_RAW",),
                 id="caps-duplicates"),
    pytest.param("storage_roots = /rhev/data-center /data/local",
                 "storage_roots", ("/rhev/data-center", "/data/local"),
                 id="storage-roots-two"),
    pytest.param("storage_roots = /srv/images/", "storage_roots",
                 ("/srv/images",), id="storage-roots-slash"),
    pytest.param("storage_roots =", "storage_roots", (),
                 id="storage-roots-none"),
    pytest.param("PIDS_LIMIT = 2048", "pids_limit", 2048,
                 id="option-name-case"),
    pytest.param("pids_limit =   2048  ", "pids_limit", 2048,
                 id="spaces"),
    pytest.param("docker_auth_file = /etc/vhc/docker/config.json",
                 "auth_files", {"docker": "/etc/vhc/docker/config.json",
                                "podman": "/etc/containers/auth.json"},
                 id="docker-auth-file"),
    pytest.param("podman_auth_file = /etc/vhc/auth.json", "auth_files",
                 {"docker": "/root/.docker/config.json",
                  "podman": "/etc/vhc/auth.json"}, id="podman-auth-file"),
]


@pytest.mark.parametrize("line, field, expected", OPTIONS)
def test_option(tmp_path, line, field, expected):
    conf = config.load(write(tmp_path, "[containers]\n%s\n" % line))
    assert getattr(conf, field) == expected


def test_all_options(tmp_path):
    path = write(tmp_path, "[containers]\nengines = podman\n"
                 "docker_socket = /a\npodman_socket = /b\n"
                 "api_timeout = 5\npull_timeout = 6\nstop_timeout = 7\n"
                 "pids_limit = 100\nnofile = 200\nnproc = 300\n"
                 "extra_capabilities = NET_RAW\ninit = off\n"
                 "placeholder_memory_mib = 64\n"
                 "storage_roots = /srv/a, /srv/b\n"
                 "blank_check_timeout = 30\ngc_grace = 60\n"
                 "leftover_grace = 10\nallow_root_user = yes\n"
                 "image_archive_max_size = 512m\nimage_load_timeout = 90\n"
                 "docker_auth_file = /etc/vhc/docker/config.json\n"
                 "podman_auth_file = /etc/vhc/auth.json\n"
                 "allowed_images = a.example/*\nrequire_digest = yes\n"
                 "pull_policy = Always\nmigration = Refuse\n"
                 "migration_wait = 30\n"
                 "console_replay_lines = 0\nconsole_exec_shell = yes\n"
                 "docker_runtimes = runsc runc\ndocker_default_runtime = runsc\n"
                 "podman_runtimes = crun\n"
                 "podman_runtime_sockets = crun:/run/p/crun.sock\n")
    assert config.load(path) == config.Config(
        engines=("podman",), sockets={"docker": "/a", "podman": "/b"},
        api_timeout=5, pull_timeout=6, stop_timeout=7, pids_limit=100,
        log_max_size="10m", log_max_files=3, writable_layer_size="10g",
        nofile=200, nproc=300,
        capabilities=config.BASE_CAPABILITIES + ("NET_RAW",), init=False,
        placeholder_memory_mib=64, storage_roots=("/srv/a", "/srv/b"),
        blank_check_timeout=30, gc_grace=60, leftover_grace=10,
        allow_root_user=True, image_archive_max_size=512 * 1024 ** 2,
        image_load_timeout=90,
        auth_files={"docker": "/etc/vhc/docker/config.json",
                    "podman": "/etc/vhc/auth.json"},
        allowed_images=("a.example/*",), require_digest=True,
        pull_policy="always", migration="refuse", migration_wait=30,
        console_replay_lines=0, console_exec_shell=True, path=path,
        runtimes={"docker": ("runsc", "runc"), "podman": ("crun",)},
        default_runtimes={"docker": "runsc", "podman": ""},
        podman_runtime_sockets={"crun": "/run/p/crun.sock"})


# option, bad value
BAD_VALUES = [
    pytest.param("api_timeout", "abc", id="not-a-number"),
    pytest.param("console_replay_lines", "1001", id="replay-above-max"),
    pytest.param("console_exec_shell", "maybe", id="shell-not-a-bool"),
    pytest.param("api_timeout", "", id="empty"),
    pytest.param("api_timeout", "0", id="below-min"),
    pytest.param("api_timeout", "3601", id="above-max"),
    pytest.param("pull_timeout", "-1", id="negative"),
    pytest.param("pull_timeout", "86401", id="pull-above-max"),
    pytest.param("stop_timeout", "1.5", id="fraction"),
    pytest.param("stop_timeout", "3601", id="stop-above-max"),
    pytest.param("pids_limit", "15", id="pids-below-min"),
    pytest.param("pids_limit", "0x400", id="hex"),
    pytest.param("pids_limit", "unlimited", id="word"),
    pytest.param("nofile", "63", id="nofile-below-min"),
    pytest.param("nofile", "1e6", id="exponent"),
    pytest.param("nproc", "-1", id="nproc-negative"),
    pytest.param("placeholder_memory_mib", "7", id="memory-below-min"),
    pytest.param("placeholder_memory_mib", "1025", id="memory-above-max"),
    pytest.param("storage_roots", "/", id="roots-slash"),
    pytest.param("storage_roots", "rhev/data-center", id="roots-relative"),
    pytest.param("storage_roots", "/rhev/../etc", id="roots-dotdot"),
    pytest.param("storage_roots", "/rhev//data", id="roots-double-slash"),
    pytest.param("blank_check_timeout", "0", id="blank-check-zero"),
    pytest.param("gc_grace", "-1", id="grace-negative"),
    pytest.param("leftover_grace", "1e3", id="leftover-grace-float"),
    pytest.param("gc_grace", "86401", id="grace-above-max"),
    pytest.param("log_max_size", "63k", id="log-size-below-min"),
    pytest.param("log_max_size", "10 m", id="log-size-space"),
    pytest.param("log_max_size", "10mb", id="log-size-unit"),
    pytest.param("log_max_size", "-1", id="log-size-negative"),
    pytest.param("log_max_size", "1e9", id="log-size-exponent"),
    pytest.param("log_max_files", "0", id="log-files-0"),
    pytest.param("log_max_files", "101", id="log-files-above-max"),
    pytest.param("writable_layer_size", "1k", id="layer-below-min"),
    pytest.param("writable_layer_size", "10t", id="layer-unit"),
    pytest.param("writable_layer_size", "unlimited", id="layer-word"),
    pytest.param("image_archive_max_size", "", id="archive-size-empty"),
    pytest.param("image_archive_max_size", "1023k", id="archive-size-small"),
    pytest.param("image_archive_max_size", "1t", id="archive-size-unit"),
    pytest.param("image_load_timeout", "0", id="load-timeout-zero"),
    pytest.param("image_load_timeout", "86401", id="load-timeout-above-max"),
    pytest.param("migration", "live", id="migration-unknown"),
    pytest.param("migration_wait", "0", id="migration-wait-zero"),
    pytest.param("docker_auth_file", "", id="auth-file-empty"),
    pytest.param("docker_auth_file", "config.json", id="auth-file-relative"),
    pytest.param("podman_auth_file", "/etc/../root/auth.json",
                 id="auth-file-dotdot"),
    pytest.param("podman_auth_file", "//etc/auth.json",
                 id="auth-file-double-slash"),
    pytest.param("init", "maybe", id="bool-word"),
    pytest.param("init", "2", id="bool-number"),
    pytest.param("init", "", id="bool-empty"),
    pytest.param("engines", "docker, lxc", id="unknown-engine"),
    pytest.param("engines", "Docker", id="engine-case"),
    pytest.param("extra_capabilities", "CAP_FOO", id="cap-prefix-unknown"),
    pytest.param("extra_capabilities", "NET_RAW, BOGUS", id="cap-unknown"),
    pytest.param("extra_capabilities", "ALL", id="cap-all"),
    pytest.param("extra_capabilities", "CAP_", id="cap-prefix-only"),
    pytest.param("docker_runtimes", "runc, kata", id="runtime-unknown"),
    pytest.param("podman_runtimes", "RUNC", id="runtime-case"),
    pytest.param("docker_default_runtime", "runsc",
                 id="default-runtime-not-offered"),
    pytest.param("podman_runtime_sockets", "runsc", id="runtime-socket-bare"),
    pytest.param("podman_runtime_sockets", "kata:/run/kata.sock",
                 id="runtime-socket-unknown"),
    pytest.param("podman_runtime_sockets", "runsc:run/runsc.sock",
                 id="runtime-socket-relative"),
]


@pytest.mark.parametrize("option, value", BAD_VALUES)
def test_bad_value(tmp_path, option, value):
    path = write(tmp_path, "[containers]\n%s = %s\n" % (option, value))
    with pytest.raises(errors.ConfigError) as e:
        config.load(path)
    msg = str(e.value)
    assert path in msg
    assert option in msg


def test_unknown_option(tmp_path):
    path = write(tmp_path, "[containers]\nprivileged = true\n")
    with pytest.raises(errors.ConfigError) as e:
        config.load(path)
    assert path in str(e.value)
    assert "'privileged'" in str(e.value)


@pytest.mark.parametrize("text", [
    pytest.param("pids_limit = 2048\n", id="no-section"),
    pytest.param("[containers]\npids_limit = 1\npids_limit = 2\n",
                 id="duplicate-option"),
    pytest.param("[containers]\n[containers]\n", id="duplicate-section"),
    pytest.param("[containers\n", id="bad-header"),
    pytest.param("[containers]\njust a line\n", id="no-equals"),
])
def test_syntax_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(errors.ConfigError) as e:
        config.load(path)
    assert path in str(e.value)
    assert "\n" not in str(e.value)


def test_not_utf8(tmp_path):
    path = write(tmp_path, u"[containers]\n# R\u00e9glages\n", "latin-1")
    with pytest.raises(errors.ConfigError) as e:
        config.load(path)
    assert path in str(e.value)
    assert "UTF-8" in str(e.value)


def test_utf8_comment_in_c_locale(tmp_path):
    # Vdsm may run hooks in the C locale, where Python 3 would decode the
    # file as ASCII; an admin's accented comment must not break every VM.
    path = write(tmp_path, u"[containers]\n# R\u00e9glages du site\n"
                 u"pids_limit = 2048\n")
    env = {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0",
           "PYTHONPATH": os.path.join(TOP, "lib"),
           # No bytecode in the checkout (tests/conftest.py).
           "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.check_output(
        [sys.executable, "-c",
         "import sys; from containerhooks import config; "
         "print(config.load(sys.argv[1]).pids_limit)", path],
        env=env)
    assert out.strip() == b"2048"


# Capabilities that make a container as good as root on the host, and a
# word the refusal's reason must contain (the admin must learn why).
HOST_ROOT = [
    ("SYS_ADMIN", "mount"),
    ("SYS_MODULE", "kernel module"),
    ("SYS_RAWIO", "device"),
    ("DAC_READ_SEARCH", "open_by_handle_at"),
    ("SYS_PTRACE", "ptrace"),
    ("SYS_BOOT", "kexec"),
    ("NET_ADMIN", "nf_tables"),
    ("MAC_ADMIN", "SELinux"),
    ("MAC_OVERRIDE", "SELinux"),
    ("BPF", "BPF"),
    ("PERFMON", "perf"),
    ("SYS_TIME", "clock"),
    ("SYSLOG", "kernel"),
    ("AUDIT_CONTROL", "audit"),
    ("ALL", "every capability"),
]


@pytest.mark.parametrize("spelling", ["{}", "CAP_{}", "{lower}",
                                      "NET_RAW, {}"])
@pytest.mark.parametrize("cap, why", HOST_ROOT, ids=[c for c, _ in HOST_ROOT])
def test_host_root_capabilities_refused_with_reason(tmp_path, cap, why,
                                                    spelling):
    value = spelling.format(cap, lower="cap_" + cap.lower())
    path = write(tmp_path, "[containers]\nextra_capabilities = %s\n" % value)
    with pytest.raises(errors.ConfigError) as e:
        config.load(path)
    msg = str(e.value)
    assert path in msg and "extra_capabilities" in msg
    assert "%s is refused" % cap in msg
    assert why.lower() in msg.lower()
    assert "\n" not in msg
