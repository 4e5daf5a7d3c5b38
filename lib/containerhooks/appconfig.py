"""The application's configuration inside the container (root side).

An Engine admin configures the image's application with the VM's custom
properties containerEnv, containerCommand, containerEntrypoint,
containerWorkdir, containerUser and containerSecrets (their grammar:
properties.py).  The hook passes their raw values to the root helper in
the spec (spec.AppConfig); this module parses them again there -- the
helper never trusts its caller -- adds the variables of the named host
secrets (secrets.py, read by root only), applies the host's rule on root
users, and returns the engine's create() options.

No value here goes through a shell: the engine receives lists.  Nothing
of a secret is logged, recorded in the state or returned in a message.
"""

import logging

from containerhooks import errors
from containerhooks import properties

log = logging.getLogger("containerhooks.appconfig")


def create_options(app, conf):
    """The create() options (environment, command, entrypoint, working_dir,
    user) for app, an AppConfig of raw property values; only those set.

    Raises InvalidProperty for a value the grammar refuses (the hook
    checked it already: a caller that did not), for a containerUser of
    uid or gid 0 unless containers.conf allows root users, and for a
    variable both containerEnv and a secret set; SecretError (secrets.py)
    for a secret that is missing or unsafe.
    """
    options = {}
    env = properties.parse_env(app.env)
    names = properties.parse_secret_names(app.secrets)
    if names:
        from containerhooks import secrets
        env = _merge(env, secrets.environment(names))
    if env:
        options["environment"] = ["%s=%s" % item for item in env]
    command = properties.parse_args(app.command, properties.CONTAINER_COMMAND)
    if command is not None:
        options["command"] = command
    entrypoint = properties.parse_args(app.entrypoint,
                                       properties.CONTAINER_ENTRYPOINT)
    if entrypoint is not None:
        options["entrypoint"] = entrypoint
    workdir = properties.parse_workdir(app.workdir)
    if workdir is not None:
        options["working_dir"] = workdir
    user = properties.parse_user(app.user)
    if user is not None:
        options["user"] = _user(app.user, user, conf)
    return options


def secret_keys(app, options):
    """The names of the variables of options (create_options') that came
    from the host's secrets: all but containerEnv's (a name set by both
    is refused)."""
    mine = set(key for key, _ in properties.parse_env(app.env))
    return [item.partition("=")[0] for item in options.get("environment")
            or () if item.partition("=")[0] not in mine]


def _merge(env, secret_env):
    """containerEnv's variables, then the secrets': one name set twice is
    refused (which one should win is the admin's to say, not a guess)."""
    mine = set(key for key, _ in env)
    for key, _ in secret_env:
        if key in mine:
            raise errors.InvalidProperty(
                name=properties.CONTAINER_ENV, value=key,
                reason="variable %s is also set by a secret in "
                "containerSecrets; set it in one place only" % key)
    return list(env) + list(secret_env)


def _user(raw, user, conf):
    uid, gid = user
    if (uid == 0 or gid == 0) and not conf.allow_root_user:
        raise errors.InvalidProperty(
            name=properties.CONTAINER_USER, value=raw,
            reason="uid 0 and gid 0 (root) are not allowed on this host "
            "(allow_root_user in containers.conf); leave containerUser "
            "empty to run as the image says")
    return str(uid) if gid is None else "%d:%d" % (uid, gid)
