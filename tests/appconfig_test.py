"""A real application configured from the VM's properties (issue 12).

The application image (tests/images.py APP_SCRIPT) behaves like postgres:
it refuses to start without a password variable and an argument.  It is
configured with containerEnv, containerCommand, containerUser,
containerWorkdir and a host secret named by containerSecrets, started by
the hooks as Vdsm runs them (the vdsm user), and another machine on the LAN
fetches its page.  What the page, the engine and the kernel say must be
what the admin set; the secret's value must appear nowhere but in the
container.
"""

import hashlib
import os

import pytest

import domains
import images
import lan as lanmod
import vmrun
from vdsm import HookError
from vmrun import power_off, start_hook as start

MAC = "00:1a:4a:16:01:61"
PASSWORD = u"s3cr=t p\u00e4ss,word #1"
SECRET = "app-db"


def app_vm(engine, **custom):
    """A VM of the application image with one vNIC on the LAN."""
    vm = domains.container_vm(engine, images.APP_IMAGE).edited(**custom)
    return domains.add_nics(vm, [(MAC, lanmod.BRIDGE)])


def set_secret(installation, name, text):
    rc, out, err = installation.run_cli("secret", "set", name,
                                        input=text.encode("utf-8"))
    assert rc == 0, err


def page(net, vm, installation):
    ip = installation.record(vm.id)["nics"][0]["ip"]
    return dict(line.split("=", 1) for line in
                net.fetch(ip).splitlines() if "=" in line), ip


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest() + "  -"


def main_process(pid):
    """The pid of the container's application: the child of its init
    (init = true), or its first process."""
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        children = f.read().split()
    return int(children[0]) if children else pid


def _proc_list(pid, name):
    with open("/proc/%d/%s" % (main_process(pid), name), "rb") as f:
        return [v.decode("utf-8") for v in f.read().split(b"\0") if v]


def main_process_environ(pid):
    """The application's environment, from the kernel."""
    return _proc_list(pid, "environ")


def main_process_cmdline(pid):
    """The application's command line, from the kernel."""
    return _proc_list(pid, "cmdline")


@pytest.fixture
def secret(installation):
    set_secret(installation, SECRET, u"APP_PASSWORD=%s\n" % PASSWORD)
    yield SECRET
    installation.run_cli("secret", "rm", SECRET)


def test_configured_application_on_the_lan(vdsm, installation, engine, lan,
                                           app_image, secret):
    name, client = engine
    net = lan[0]
    vm = app_vm(name, containerEnv=u"APP_MODE=eu%2C prod \u00fcber,"
                u"EMPTY=,URL=http://x/?a=b%25c",
                containerCommand=u"Hello%20world second,arg \u00e9t\u00e9",
                containerSecrets=secret, containerUser="1000:1001",
                containerWorkdir="/tmp")

    result = start(vdsm, vm)

    values, ip = page(net, vm, installation)
    assert values["password_sha256"] == sha(PASSWORD)
    assert values["args"] == "3"
    assert values["greeting"] == "Hello world"
    assert [v for k, v in _lines(net, ip) if k == "arg_sha256"] == [
        sha(u"Hello world"), sha(u"second,arg"), sha(u"\u00e9t\u00e9")]
    assert values["mode"] == u"eu, prod \u00fcber"
    assert (values["uid"], values["gid"], values["cwd"]) == (
        "1000", "1001", "/tmp")
    # The engine says the same ...
    c = client.containers.get("ovirt-vm-" + vm.id)
    env = c.attrs["Config"]["Env"]
    for item in (u"APP_MODE=eu, prod \u00fcber", "EMPTY=",
                 "URL=http://x/?a=b%c", u"APP_PASSWORD=" + PASSWORD):
        assert item in env
    assert c.attrs["Config"]["Cmd"] == [u"Hello world", u"second,arg",
                                       u"\u00e9t\u00e9"]
    assert c.attrs["Config"]["User"] == "1000:1001"
    assert c.attrs["Config"]["WorkingDir"] == "/tmp"
    # ... and so does the kernel.
    environ = main_process_environ(c.attrs["State"]["Pid"])
    assert u"APP_MODE=eu, prod \u00fcber" in environ
    assert u"APP_PASSWORD=" + PASSWORD in environ

    _, after = power_off(vdsm, vm, result.data)
    assert after.errors == []
    # The secret's value is nowhere the vdsm user, Engine or a log sees:
    # not in the domain XML in or out, the installation's state, logs and
    # exit records, nor vdsm-containers ps.
    needle = PASSWORD.encode("utf-8")
    assert needle not in vm.xml.encode("utf-8")
    assert needle not in result.data.encode("utf-8")
    rc, out, err = installation.run_cli("ps", "--all")
    assert needle not in (out + err).encode("utf-8")
    for path in installation.files_outside_secrets():
        with open(path, "rb") as f:
            assert needle not in f.read(), path


def _lines(net, ip):
    return [line.split("=", 1) for line in net.fetch(ip).splitlines()
            if "=" in line]


@pytest.mark.parametrize("image", [
    # Its ENTRYPOINT is the script that refuses to start unconfigured.
    pytest.param(images.APP_IMAGE, id="app-entrypoint"),
    # Its CMD runs httpd: dropped, as docker run --entrypoint drops it.
    pytest.param(images.IMAGE, id="image-cmd"),
])
def test_entrypoint_replaces_the_images(vdsm, installation, engine, lan,
                                        app_image, image):
    name, client = engine
    vm = domains.add_nics(domains.container_vm(name, image).edited(
        containerEntrypoint="/bin/httpd -f -p 8080 -h /www"),
        [(MAC, lanmod.BRIDGE)])
    result = start(vdsm, vm)
    ip = installation.record(vm.id)["nics"][0]["ip"]
    assert lan[0].fetch(ip) == "hello from vdsm-hook-containers\n"
    c = client.containers.get("ovirt-vm-" + vm.id)
    assert c.attrs["Config"]["Entrypoint"] == [
        "/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
    # What runs, in the kernel: the entrypoint, no CMD after it.
    assert main_process_cmdline(c.attrs["State"]["Pid"]) == [
        "/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
    power_off(vdsm, vm, result.data)


def test_missing_secret_refuses_the_start(vdsm, installation, engine, lan,
                                          app_image):
    name, client = engine
    vm = app_vm(name, containerCommand="hi",
                containerSecrets="no-such-secret")
    refusal, _, after = vmrun.refused_start(vdsm, vm)
    message = refusal.exit_message
    assert "no-such-secret" in message
    assert "vdsm-containers secret set no-such-secret" in message
    assert vmrun.containers_of(client, vm) == []
    assert vm.id + ".json" not in installation.state_files()


@pytest.mark.parametrize("user", ["0", "0:0", "1000:0"])
def test_root_user_needs_the_host_to_allow_it(vdsm, installation, engine,
                                              lan, app_image, secret,
                                              fresh_conf, user):
    name, client = engine
    vm = app_vm(name, containerCommand="hi", containerSecrets=secret,
                containerUser=user)
    refusal, _, _ = vmrun.refused_start(vdsm, vm)
    assert "allow_root_user" in refusal.exit_message
    assert vmrun.containers_of(client, vm) == []

    installation.configure(allow_root_user="yes")
    result = start(vdsm, vm)
    values, _ = page(lan[0], vm, installation)
    assert values["uid"] == user.split(":")[0]
    power_off(vdsm, vm, result.data)


def test_changed_properties_take_effect_at_the_next_start(
        vdsm, installation, engine, lan, app_image, secret):
    # Power off, edit the VM in Engine, Run: nothing of the first run's
    # configuration is left in the second.
    name, client = engine
    vm = app_vm(name, containerEnv="APP_MODE=first,OLD=1",
                containerCommand="one", containerSecrets=secret)
    result = start(vdsm, vm)
    assert page(lan[0], vm, installation)[0]["mode"] == "first"
    power_off(vdsm, vm, result.data)

    set_secret(installation, SECRET, u"APP_PASSWORD=second\n")
    vm = domains.add_nics(vm.edited(containerEnv="APP_MODE=second",
                                    containerCommand="two"),
                          [(MAC, lanmod.BRIDGE)])
    result = start(vdsm, vm)
    values, _ = page(lan[0], vm, installation)
    assert (values["mode"], values["greeting"]) == ("second", "two")
    assert values["password_sha256"] == sha(u"second")
    env = client.containers.get("ovirt-vm-" + vm.id).attrs["Config"]["Env"]
    assert not [e for e in env if e.startswith("OLD=")]
    power_off(vdsm, vm, result.data)


def test_bad_values_refused_before_anything_runs(vdsm, installation, engine,
                                                 app_image):
    name, client = engine
    for custom in ({"containerEnv": "1BAD=x"},
                   {"containerCommand": "a  b"},
                   {"containerUser": "postgres"},
                   {"containerSecrets": "../etc/shadow"}):
        vm = domains.container_vm(name, images.APP_IMAGE).edited(**custom)
        with pytest.raises(HookError) as e:
            start(vdsm, vm)
        assert list(custom)[0] in e.value.exit_message
        assert vmrun.containers_of(client, vm) == []


LONG_FQDN = "web-" + "a" * 40 + "." + "b" * 20 + ".example.com"


@pytest.mark.parametrize("fqdn, inside", [
    pytest.param("db.example.com", "db.example.com", id="fqdn"),
    # Longer than Linux's hostname (64): the first label (spec.host_names).
    pytest.param(LONG_FQDN, LONG_FQDN.split(".")[0], id="long-fqdn"),
])
def test_initial_run_fqdn_names_the_container(vdsm, installation, engine,
                                              fqdn, inside):
    # Engine's Initial Run (cloud-init) sets a hostname: the container has
    # it, and Engine's guestFQDN shows it.
    import vdsmstats
    name, client = engine
    vm = domains.container_vm(name, images.IMAGE, cloud_init_hostname=fqdn)
    result = start(vdsm, vm)
    c = client.containers.get("ovirt-vm-" + vm.id)
    assert vmrun.sh(c, "hostname").strip() == inside
    stats = vdsm.run("after_get_all_vm_stats", [vdsmstats.vm_stats(vm.id)])
    assert stats.data[0]["guestFQDN"] == fqdn
    power_off(vdsm, vm, result.data)


def test_non_ascii_values_in_the_c_locale(installation, engine):
    # Python 3.6 (EL8) in the C locale decodes the environment as ASCII
    # and keeps other bytes as lone surrogates (Python 3.7+ switches to
    # UTF-8 there unless told not to, as here): the value must still be
    # the domain XML's, and the container's variable the admin's text.
    import vdsm as vdsm_module
    name, client = engine
    hook_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
                "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    vdsm = vdsm_module.Vdsm(installation.hooks_dir, user="vdsm",
                            base_env=hook_env)
    vm = domains.container_vm(name, images.IMAGE).edited(
        containerEnv=u"GREETING=gr\u00fc\u00df dich%2C \u4e16\u754c")
    result = start(vdsm, vm)
    env = client.containers.get("ovirt-vm-" + vm.id).attrs["Config"]["Env"]
    assert u"GREETING=gr\u00fc\u00df dich, \u4e16\u754c" in env
    power_off(vdsm, vm, result.data)
