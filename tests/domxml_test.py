"""The domain XML's Initial Run (cloud-init) FQDN, as Engine writes the
payload and Vdsm hands it to before_vm_start (tests/vdsm.py with_payload).
"""

import base64
import json
import logging

import pytest
from hypothesis import given, settings, strategies as st

import domains
import vdsm
from containerhooks import domxml
from containerhooks import spec as specs

CUSTOM = {"containerType": "docker", "containerImage": "redis:7"}


def domain(vm_xml):
    return domxml.Domain.parse(vm_xml.encode("utf-8"))


def with_payload(**kw):
    """A VM's domain XML with a payload, as before_vm_start gets it."""
    vm = domains.VM(CUSTOM)
    return vdsm.build_domain_xml(vdsm.with_payload(vm.engine_xml, **kw))


def meta_data(value):
    """meta_data.json as Engine writes it, with value as "hostname"."""
    files = vdsm.cloud_init_files("placeholder.example.com")
    meta = json.loads(files[vdsm.META_DATA].decode("utf-8"))
    meta["hostname"] = value
    return json.dumps(meta, indent=2).encode("utf-8")


@pytest.mark.parametrize("hostname, fqdn", [
    pytest.param("web.example.com", "web.example.com", id="fqdn"),
    pytest.param("web", "web", id="one-label"),
    pytest.param("Web-01.Sales.Example.COM", "Web-01.Sales.Example.COM",
                 id="case-kept"),
    # Engine's dialog allows '_' and fills the hostname in from the VM's
    # name: as for a VM name, '_' becomes '-'.
    pytest.param("web_1.example.com", "web-1.example.com", id="underscore"),
    pytest.param("web.example.com.", "web.example.com", id="final-dot"),
    pytest.param("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61,
                 "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61,
                 id="253"),
])
def test_initial_run_hostname(hostname, fqdn, caplog):
    vm = domains.VM(CUSTOM, cloud_init_hostname=hostname)
    with caplog.at_level(logging.WARNING, "containerhooks"):
        assert domain(vm.xml).cloud_init_fqdn() == fqdn
    assert caplog.records == []


@pytest.mark.parametrize("bus", ["ide", "sata", "scsi"])
def test_payload_of_any_cdrom_interface(bus):
    # i440fx VMs get it as hdd, q35 ones as sdb.
    xml = with_payload(files=vdsm.cloud_init_files("db.example.com"),
                       bus=bus)
    assert domain(xml).cloud_init_fqdn() == "db.example.com"


def test_vdsm_44_sorted_attributes():
    # Vdsm 4.4 on EL8 writes every element's attributes sorted.
    vm = domains.VM(CUSTOM)
    xml = vdsm.build_domain_xml(
        vdsm.with_payload(vm.engine_xml,
                          files=vdsm.cloud_init_files("db.example.com")),
        sorted_attributes=True)
    assert domain(xml).cloud_init_fqdn() == "db.example.com"


def test_base64_in_lines():
    # What Vdsm decodes (base64.b64decode skips the line breaks), though
    # Engine writes one line.
    text = base64.encodebytes(meta_data("db.example.com")).decode("ascii")
    assert "\n" in text.strip()
    xml = with_payload(encoded={vdsm.META_DATA: text})
    assert domain(xml).cloud_init_fqdn() == "db.example.com"


@pytest.mark.parametrize("make", [
    pytest.param(lambda: domains.VM(CUSTOM).xml, id="no-payload"),
    pytest.param(lambda: domains.VM(CUSTOM, cloud_init_hostname=None).xml,
                 id="no-initial-run"),
    # An Initial Run that sets no hostname: Engine leaves it out.
    pytest.param(lambda: with_payload(files=vdsm.cloud_init_files(None)),
                 id="no-hostname"),
    pytest.param(lambda: with_payload(files={vdsm.META_DATA: meta_data("")}),
                 id="empty-hostname"),
    pytest.param(lambda: with_payload(files={vdsm.META_DATA: meta_data(None)}),
                 id="null-hostname"),
    # A sysprep or user payload: no config-2 volume, no cloud-init.
    pytest.param(lambda: with_payload(
        files=vdsm.cloud_init_files("db.example.com"), volume_id=None),
        id="no-volume-id"),
    pytest.param(lambda: with_payload(
        files=vdsm.cloud_init_files("db.example.com"), volume_id="sysprep"),
        id="other-volume-id"),
    pytest.param(lambda: with_payload(
        files={"openstack/latest/user_data": meta_data("db.example.com")}),
        id="other-file"),
    pytest.param(lambda: with_payload(files={vdsm.META_DATA: b"[1, 2]"}),
                 id="json-list"),
])
def test_no_fqdn(make, caplog):
    with caplog.at_level(logging.WARNING, "containerhooks"):
        assert domain(make()).cloud_init_fqdn() is None
    assert caplog.records == []


def b64(data):
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize("text, logged", [
    pytest.param("not base64!", "not base64", id="not-base64"),
    pytest.param(b64(b"{}")[:-1], "not base64", id="bad-padding"),
    pytest.param(b64(b"{}").replace("+", "-") + "-_", "not base64",
                 id="urlsafe"),
    pytest.param(b64(b"\xff\xfe{}"), "not UTF-8 JSON", id="not-utf8"),
    pytest.param(b64(b"{\"hostname\": "), "Expecting", id="not-json"),
    pytest.param(b64(b"[" * 20000 + b"]" * 20000), "nested too deeply",
                 id="deep"),
    # More than MAX_META_DATA_BASE64 characters is refused before any
    # decoding, valid or not.
    pytest.param(b64(meta_data("db.example.com") + b" " * 50000),
                 "more than 65536", id="oversized"),
    pytest.param("A" * (8 * 1024 * 1024), "more than 65536",
                 id="8-MiB"),
])
def test_unreadable_meta_data_is_ignored(text, logged, caplog):
    xml = with_payload(encoded={vdsm.META_DATA: text})
    with caplog.at_level(logging.WARNING, "containerhooks"):
        assert domain(xml).cloud_init_fqdn() is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert logged in caplog.records[0].getMessage()
    assert "meta_data.json" in caplog.records[0].getMessage()


@pytest.mark.parametrize("hostname", [
    pytest.param("-web.example.com", id="leading-dash"),
    pytest.param("web-.example.com", id="trailing-dash"),
    pytest.param("web..example.com", id="empty-label"),
    pytest.param(".example.com", id="leading-dot"),
    pytest.param("web.example.com..", id="two-final-dots"),
    pytest.param("a" * 64 + ".example.com", id="label-64"),
    pytest.param("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62,
                 id="254"),
    pytest.param("10.0.0.1", id="ipv4"),
    pytest.param("web example.com", id="space"),
    pytest.param("w\u00e9b.example.com", id="non-ascii"),
    pytest.param("web.example.com\n", id="newline"),
    pytest.param(12, id="number"),
    pytest.param(["web.example.com"], id="list"),
])
def test_not_a_host_name_runs_with_the_vm_name(hostname, caplog):
    xml = with_payload(files={vdsm.META_DATA: meta_data(hostname)})
    with caplog.at_level(logging.WARNING, "containerhooks"):
        assert domain(xml).cloud_init_fqdn() is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    message = caplog.records[0].getMessage()
    assert "not a host name" in message and "named after the VM" in message


# Generated input: whatever the payload holds, the answer is an FQDN or
# None, never an exception (which would fail the start).

_BASE = domains.VM(CUSTOM).engine_xml
_XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")),
                    max_size=200)


def _fqdn_of(encoded):
    xml = vdsm.build_domain_xml(vdsm.with_payload(_BASE, encoded=encoded))
    return domain(xml).cloud_init_fqdn()


@settings(max_examples=300, deadline=None)
@given(st.one_of(_XML_TEXT, st.binary(max_size=200).map(b64)))
def test_generated_meta_data(text):
    fqdn = _fqdn_of({vdsm.META_DATA: text})
    assert fqdn is None or specs.is_fqdn(fqdn)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=80),
    st.from_regex(r"\A[A-Za-z0-9_.-]{1,80}\Z"),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                 lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                 max_leaves=5)))
def test_generated_hostname(value):
    meta = json.dumps({"hostname": value}).encode("utf-8")
    fqdn = _fqdn_of({vdsm.META_DATA: b64(meta)})
    assert fqdn == (specs.as_fqdn(value) if value else None)
    assert fqdn is None or specs.is_fqdn(fqdn)
