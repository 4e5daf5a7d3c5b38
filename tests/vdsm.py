"""A stand-in for Vdsm's hook runner: the hook contract, in one place.

Vdsm and Engine cannot run here, so the tests call the hook scripts exactly
as Vdsm's lib/vdsm/common/hooks.py (_runHooksDir) does:

- the scripts are the regular, executable files of <hooks>/<hook_name>/,
  run one after the other sorted by full path, each exec'd directly (its
  shebang picks the interpreter) with stdout and stderr piped;
- the data goes to a file made by tempfile.mkstemp() (owned by the user
  Vdsm runs as): domain XML as text for XML hooks, json.dumps() of the data
  for JSON hooks, an empty file when there is no data (before_vm_destroy);
- the environment is Vdsm's own, plus the hook's params, plus the VM's
  custom properties (one variable each, same name), plus vmId, plus
  PYTHONPATH extended with Vdsm's hook package directory, plus
  _hook_domxml or _hook_json naming the file; device hooks
  (before_disk_hotunplug) add the device's own custom properties as params;
- exit code 0 is success, any other an error (the script's stderr is kept);
  2 skips the remaining scripts; more than 2 is logged as unexpected;
- hooks called with raiseError=True fail before the file is read back;
  the others read it back by name, even after a failure;
  before_vm_start raises HookError(stderr of the last failing script)
  after reading it back, and Engine shows "Hook Error: (b'...',)";
- Vdsm runs as the vdsm user (uid 36, group kvm), with no timeout on hooks
  (a safety timeout here keeps a hanging hook from hanging the test run).
"""

import collections
import grp
import json
import os
import pwd
import subprocess
import tempfile

VDSM_USER = "vdsm"
SAFETY_TIMEOUT = 300

XML = "domxml"
JSON = "json"

# hook name -> (data type, raiseError) as in lib/vdsm/common/hooks.py
HOOKS = {
    "before_vm_start": (XML, False),
    "after_vm_start": (XML, False),
    "before_vm_destroy": (XML, False),
    "after_vm_destroy": (XML, False),
    "before_disk_hotunplug": (XML, True),
    "after_disk_hotunplug": (XML, False),
    "before_vm_migrate_source": (XML, True),
    "before_vm_hibernate": (XML, True),
    "before_vm_pause": (XML, True),
    "after_vm_pause": (XML, False),
    "before_vm_cont": (XML, True),
    "after_vm_cont": (XML, False),
    "after_get_vm_stats": (JSON, False),
    "after_get_all_vm_stats": (JSON, False),
    "after_get_stats": (JSON, False),
    "after_get_caps": (JSON, False),
}

Script = collections.namedtuple("Script", "path, rc, out, err")


class HookError(Exception):
    """What Vdsm raises for a failed hook (vdsm.common.exception)."""

    def __init__(self, err, result):
        Exception.__init__(self, err)
        self.err = err
        self.result = result

    @property
    def exit_message(self):
        # What Engine shows as the VM's exit message.
        return "Hook Error: (%r,)" % (self.err,)


class Result(object):

    def __init__(self, data, scripts):
        self.data = data
        self.scripts = scripts

    @property
    def errors(self):
        return [s.err for s in self.scripts if s.rc != 0]


class Spawned(object):
    """A hook script started by Vdsm.spawn(), still running."""

    def __init__(self, hook, script, proc, path):
        self.hook = hook
        self.script = script
        self.proc = proc
        self.path = path

    def finish(self, timeout=SAFETY_TIMEOUT):
        """Wait for the script, then return Result or raise HookError as
        Vdsm.run() does; the data file is removed."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
            return _read_back(self.hook, self.path, [
                Script(self.script, self.proc.returncode, out, err)])
        finally:
            os.unlink(self.path)


def _read_back(hook, path, results):
    """What Vdsm does once the scripts ran: raise for a hook called with
    raiseError, else read the data file back (before_vm_start raises
    after that)."""
    kind, raise_error = HOOKS[hook]
    errors = [s.err for s in results if s.rc != 0]
    if errors and raise_error:
        raise HookError(errors[-1], Result(None, results))
    with open(path, encoding="utf-8") as f:
        final = f.read()
    result = Result(final if kind == XML else json.loads(final), results)
    if errors and hook == "before_vm_start":
        raise HookError(errors[-1], result)
    return result


class Vdsm(object):
    """Runs hooks from hooks_dir as Vdsm would, as user (name) or root."""

    def __init__(self, hooks_dir, user=VDSM_USER, pythonpath=None,
                 base_env=None):
        self.hooks_dir = hooks_dir
        self.user = user
        self.pythonpath = pythonpath
        self.base_env = base_env if base_env is not None else {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        }

    def scripts(self, hook):
        d = os.path.join(self.hooks_dir, hook)
        if not os.path.isdir(d):
            return []
        paths = [os.path.join(d, n) for n in os.listdir(d)]
        return sorted(p for p in paths
                      if os.path.isfile(p) and os.access(p, os.X_OK))

    def run(self, hook, data=None, vm_id=None, custom=None, params=None):
        """Run a hook; return Result, or raise HookError like Vdsm."""
        scripts = self.scripts(hook)
        if not scripts:
            return Result(data, [])
        path = self.data_file(hook, data)
        try:
            env = self._env(HOOKS[hook][0], path, vm_id, custom, params)
            results = []
            for script in scripts:
                p = subprocess.Popen([script], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env,
                                     **self._credentials())
                out, err = p.communicate(timeout=SAFETY_TIMEOUT)
                results.append(Script(script, p.returncode, out, err))
                if p.returncode == 2:
                    break
            return _read_back(hook, path, results)
        finally:
            os.unlink(path)

    def hotunplug_disk(self, vm, target):
        """Engine's hot-unplug of vm's disk target, as Vdsm's virt/vm.py
        hotunplugDisk runs the hook: before_disk_hotunplug with the drive's
        own <disk> element (drive.getXML(), built from the disk Engine
        sent, pretty-printed), vmconf {vmId, custom} and the drive's
        device custom properties as params (none here); raiseError, so a
        refusal raises HookError and the unplug never reaches libvirt."""
        from lxml import etree
        root = etree.fromstring(vm.xml.encode("utf-8"))
        for disk in root.iterfind("devices/disk"):
            if disk.find("target").get("dev") == target:
                break
        else:
            raise ValueError("%s has no disk %s" % (vm.id, target))
        xml = etree.tostring(disk, pretty_print=True).decode("utf-8")
        return self.run("before_disk_hotunplug", xml, vm_id=vm.id,
                        custom=vm.custom, params={})

    def spawn(self, hook, data=None, vm_id=None, custom=None, params=None):
        """Start the hook's one script as run() would, without waiting for
        it, so that a test can do something to it meanwhile (kill it);
        Spawned.finish() then does what run() does after the script."""
        scripts = self.scripts(hook)
        if len(scripts) != 1:
            raise ValueError("spawn runs one script, %s has %d"
                             % (hook, len(scripts)))
        path = self.data_file(hook, data)
        try:
            proc = subprocess.Popen(
                scripts, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                **self.popen_options(hook, path, vm_id, custom, params))
        except BaseException:
            os.unlink(path)
            raise
        return Spawned(hook, scripts[0], proc, path)

    def data_file(self, hook, data):
        """The hook's data in a new file, owned by the user Vdsm runs as."""
        fd, path = tempfile.mkstemp()
        try:
            if HOOKS[hook][0] == XML:
                os.write(fd, data.encode("utf-8") if data else b"")
            else:
                os.write(fd, json.dumps(data).encode("utf-8"))
            os.close(fd)
            if self.user != "root":
                pw = pwd.getpwnam(self.user)
                os.chown(path, pw.pw_uid, pw.pw_gid)
        except BaseException:
            os.unlink(path)
            raise
        return path

    def popen_options(self, hook, path, vm_id=None, custom=None,
                      params=None):
        """The environment and credentials Vdsm runs hook's scripts with,
        for the data file at path (dev/bench.py times the scripts alone
        with them)."""
        kind = HOOKS[hook][0]
        options = dict(env=self._env(kind, path, vm_id, custom, params))
        options.update(self._credentials())
        return options

    def _env(self, kind, path, vm_id, custom, params):
        env = dict(self.base_env)
        for k, v in list((params or {}).items()) + list(
                (custom or {}).items()):
            env[k] = v
        if vm_id:
            env["vmId"] = vm_id
        ppath = env.get("PYTHONPATH", "").split(":")
        if self.pythonpath:
            ppath.append(self.pythonpath)
        env["PYTHONPATH"] = ":".join(ppath)
        env["_hook_domxml" if kind == XML else "_hook_json"] = path
        return env

    def _credentials(self):
        if self.user == "root":
            return {}
        pw = pwd.getpwnam(self.user)
        groups = [g.gr_gid for g in grp.getgrall() if self.user in g.gr_mem]
        return {"user": pw.pw_uid, "group": pw.pw_gid,
                "extra_groups": groups, "cwd": "/"}
