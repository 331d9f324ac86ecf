"""``--secure``: per-run broker users, their topic grants, a TLS CA, and the files that carry them.

A secure run has one broker user for its world, one per actor and one per fleet served by a worker started
on its own (``v2x worker``), each with a random password, and grants (``v2x.net.topics.world_grants`` /
``actor_grants`` / ``fleet_grants``) for the run ids of every variant. The embedded broker
enforces them in process (``v2x.net.amqtt_acl``); for a broker of one's own, ``write_secure_dir`` writes a
Mosquitto 2 password file (``$7$`` PBKDF2-SHA512), ACL file and configuration with a TLS listener, and one
credentials file per actor for outside stacks and per fleet for remote fleet workers (``v2x secure init``;
docs/SECURITY.md, docs/PROTOCOL.md).
"""

from __future__ import annotations

import base64
import datetime
import getpass
import hashlib
import ipaddress
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from v2x.files import not_private, read_regular, replace_whole
from v2x.net import topics
from v2x.net.broker import BrokerAddress, EmbeddedSecurity

FORMAT = "v2x-secure 1"
WORLD_FILE = "world.json"
ACTORS_DIR = "actors"
FLEETS_DIR = "fleets"
MOSQUITTO_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes
CERT_DAYS = 365


class SecureDirError(ValueError):
    """A secure directory (``v2x secure init``) that is missing, unreadable or for another run."""


@dataclass(frozen=True)
class Security:
    """How a run protects itself; ``None`` in place of one is the open run of docs/SECURITY.md.

    ``directory``: the files of ``v2x secure init`` (needed with a broker of one's own; without it the run
    makes its users, passwords and CA itself, for the embedded broker). ``tls``: the embedded broker listens
    with TLS (a broker of one's own: as its URL says, ``mqtts://``)."""

    directory: Path | None = None
    tls: bool = True


@dataclass(frozen=True)
class Login:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Tls:
    """PEM text of a CA certificate, and of a server certificate and key it signed."""

    ca_pem: str
    cert_pem: str = field(repr=False)
    key_pem: str = field(repr=False)


@dataclass(frozen=True)
class RunKeys:
    """The users of one run (every variant of a scenario): ``run_ids`` variant -> run id; ``fleets``: the
    fleets served by workers started on their own (``v2x worker``; none unless ``v2x secure init --workers``)."""

    scenario_id: str
    run_ids: dict[str, str]
    world: Login
    actors: dict[str, Login]
    ca_pem: str | None = field(default=None, repr=False)
    fleets: dict[str, Login] = field(default_factory=dict)

    def grants(self) -> dict[str, topics.Grants]:
        """User name -> what it may write and read, over every run id of the run."""
        out = {self.world.username: _merge(topics.world_grants(r) for r in self.run_ids.values())}
        for actor_id, login in self.actors.items():
            out[login.username] = _merge(topics.actor_grants(r, actor_id) for r in self.run_ids.values())
        for fleet_id, login in self.fleets.items():
            out[login.username] = _merge(topics.fleet_grants(r, fleet_id) for r in self.run_ids.values())
        return out

    def passwords(self) -> dict[str, str]:
        logins = [self.world, *self.actors.values(), *self.fleets.values()]
        return {login.username: login.password for login in logins}

    def embedded(self, tls_files: tuple[str, str] | None = None) -> EmbeddedSecurity:
        """What the embedded broker enforces for this run; ``tls_files``: (certificate, key) PEM files."""
        cert, key = tls_files if tls_files else (None, None)
        return EmbeddedSecurity(self.passwords(), self.grants(), cert, key, self.ca_pem)

    def world_address(self, broker: BrokerAddress) -> BrokerAddress:
        return _with(broker, self.world, self.ca_pem)

    def actor_address(self, broker: BrokerAddress, actor_id: str) -> BrokerAddress:
        login = self.actors.get(actor_id)
        if login is None:
            raise SecureDirError(f"no credentials for actor {actor_id!r} (scenario {self.scenario_id})")
        return _with(broker, login, self.ca_pem)


def _with(broker: BrokerAddress, login: Login, ca_pem: str | None) -> BrokerAddress:
    address = broker.login(login.username, login.password)
    if address.tls and address.ca_pem is None and ca_pem is not None:
        address = replace(address, ca_pem=ca_pem)
    return address


def _merge(grants: Iterable[topics.Grants]) -> topics.Grants:
    write: list[str] = []
    read: list[str] = []
    for g in grants:
        write += [t for t in g.write if t not in write]
        read += [t for t in g.read if t not in read]
    return topics.Grants(tuple(write), tuple(read))


def world_user(run_prefix: str) -> str:
    return f"v2x-world@{run_prefix}"


def actor_user(run_prefix: str, actor_id: str) -> str:
    return f"actor.{actor_id}@{run_prefix}"


def fleet_user(run_prefix: str, fleet_id: str) -> str:
    return f"fleet.{fleet_id}@{run_prefix}"


def new_run_keys(
    scenario_id: str,
    run_prefix: str,
    run_ids: Mapping[str, str],
    actor_ids: Iterable[str],
    ca_pem: str | None = None,
    fleet_ids: Iterable[str] = (),
) -> RunKeys:
    """Fresh users with random passwords for the world, every actor and every fleet of ``fleet_ids`` (served by
    workers started on their own) of the run ids ``run_ids``."""
    return RunKeys(
        scenario_id=scenario_id,
        run_ids=dict(run_ids),
        world=Login(world_user(run_prefix), secrets.token_urlsafe(24)),
        actors={a: Login(actor_user(run_prefix, a), secrets.token_urlsafe(24)) for a in actor_ids},
        ca_pem=ca_pem,
        fleets={f: Login(fleet_user(run_prefix, f), secrets.token_urlsafe(24)) for f in fleet_ids},
    )


# -- TLS --------------------------------------------------------------------------------------------------
def make_tls(hosts: Iterable[str] = ("127.0.0.1", "localhost")) -> Tls:
    """A fresh CA (EC P-256, valid ``CERT_DAYS``) and a server certificate it signs for ``hosts`` (IP
    addresses or DNS names; 127.0.0.1, ::1 and localhost are always in)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=CERT_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"v2x-testbed run CA {secrets.token_hex(4)}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in ["127.0.0.1", "::1", "localhost", *hosts]:
        if host in seen:
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    # Clients match the names of the SAN; the CN is only a label, and x509 holds at most 64 characters in it
    # (a longer --host was a traceback: fuzz review 25): the first name that fits.
    common_name = next(h for h in [*hosts, "localhost"] if len(h) <= 64)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Tls(ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(), key_pem.decode())


# -- Mosquitto ----------------------------------------------------------------------------------------------
def mosquitto_password(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password-file hash: ``$7$101$<salt>$<PBKDF2-HMAC-SHA512>`` (base64), as mosquitto_passwd
    writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, MOSQUITTO_ITERATIONS)
    return f"$7${MOSQUITTO_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def mosquitto_passwd_file(keys: RunKeys) -> str:
    return "".join(f"{user}:{mosquitto_password(pw)}\n" for user, pw in keys.passwords().items())


def mosquitto_acl_file(keys: RunKeys) -> str:
    """A Mosquitto ``acl_file``: each user's grants (``topic read|write|readwrite FILTER``); nothing else
    is allowed to anyone (no pattern lines, no anonymous section)."""
    lines = [f"# v2x secure init: scenario {keys.scenario_id}, runs {', '.join(keys.run_ids.values())}"]
    for user, grants in keys.grants().items():
        lines += ["", f"user {user}"]
        for t in dict.fromkeys([*grants.write, *grants.read]):
            access = "readwrite" if t in grants.write and t in grants.read else "write" if t in grants.write else "read"
            lines.append(f"topic {access} {t}")
    return "\n".join(lines) + "\n"


def mosquitto_conf(directory: Path, port: int, bind: str | None) -> str:
    """A Mosquitto 2 configuration: one TLS listener, no anonymous clients, the password and ACL files of
    ``directory`` (absolute paths), Nagle off (docker/mosquitto.conf's settings)."""
    d = directory.resolve()
    return (
        "# v2x secure init (docs/SECURITY.md): mosquitto -c this-file\n"
        "# Started as root, Mosquitto runs as 'user'; the key and password files are readable by their owner only.\n"
        f"user {getpass.getuser()}\n"
        f"listener {port}{' ' + bind if bind else ''}\n"
        f"cafile {d / 'ca.crt'}\n"
        f"certfile {d / 'server.crt'}\n"
        f"keyfile {d / 'server.key'}\n"
        "tls_version tlsv1.2\n"
        "allow_anonymous false\n"
        f"password_file {d / 'passwd'}\n"
        f"acl_file {d / 'acl'}\n"
        "persistence false\n"
        "set_tcp_nodelay true\n"
        '# the largest message a run carries: 64 MiB (docs/SECURITY.md "Oversized messages")\n'
        "max_packet_size 67174400\n"
        "message_size_limit 67108864\n"
    )


# -- the secure directory ------------------------------------------------------------------------------------
def _write(path: Path, text: str, private: bool) -> Path:
    """``path`` written whole (a new file renamed over it: a symlink planted there is replaced, not followed;
    it was followed, and the passwords went into another user's file: attack review 3), 0600 or 0644."""
    return replace_whole(path, text.encode(), 0o600 if private else 0o644)


def _private_folder(folder: Path) -> None:
    """``folder`` made (0700) if it is not there, else SecureDirError if it is no place for the run's secrets."""
    try:
        folder.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        why = not_private(folder)
        if why is not None:
            raise SecureDirError(why) from None


def actor_document(keys: RunKeys, actor_id: str, broker_url: str, run_prefix: str) -> dict[str, Any]:
    """What an outside stack driving ``actor_id`` needs (docs/PROTOCOL.md, "Secure runs"); with ``fleet: True``
    in it, what the worker serving fleet ``actor_id`` needs (``v2x worker --credentials``)."""
    fleet = actor_id in keys.fleets
    login = keys.fleets[actor_id] if fleet else keys.actors[actor_id]
    grants = topics.fleet_grants if fleet else topics.actor_grants  # per run id
    return {
        "format": FORMAT,
        "scenario": keys.scenario_id,
        "actor_id": actor_id,
        **({"fleet": True, "fleets": len(keys.fleets)} if fleet else {}),
        "run_id": run_prefix,
        "run_ids": keys.run_ids,
        "broker": broker_url,
        "username": login.username,
        "password": login.password,
        "ca_pem": keys.ca_pem,
        "publish": [t for r in keys.run_ids.values() for t in grants(r, actor_id).write],
        "subscribe": [t for r in keys.run_ids.values() for t in grants(r, actor_id).read],
    }


def write_secure_dir(directory: Path, keys: RunKeys, tls: Tls, *, run_prefix: str, host: str, port: int) -> list[Path]:
    """Write a broker's and a run's files into ``directory`` (``v2x secure init``); the paths written.
    SecureDirError, before anything is written, if ``directory`` or its ``actors`` folder belongs to another
    user or may be written by anyone."""
    _private_folder(directory)
    for folder, parties in ((ACTORS_DIR, keys.actors), (FLEETS_DIR, keys.fleets)):
        if parties:
            _private_folder(directory / folder)
    broker_url = f"mqtts://{host}:{port}"
    try:
        bind: str | None = str(ipaddress.ip_address(host))
    except ValueError:
        bind = None
    world = {
        "format": FORMAT,
        "scenario": keys.scenario_id,
        "run_id": run_prefix,
        "run_ids": keys.run_ids,
        "broker": broker_url,
        "username": keys.world.username,
        "password": keys.world.password,
        "ca_pem": keys.ca_pem,
    }
    written = [
        _write(directory / "ca.crt", tls.ca_pem, private=False),
        _write(directory / "server.crt", tls.cert_pem, private=False),
        _write(directory / "server.key", tls.key_pem, private=True),
        _write(directory / "passwd", mosquitto_passwd_file(keys), private=True),
        _write(directory / "acl", mosquitto_acl_file(keys), private=False),
        _write(directory / "mosquitto.conf", mosquitto_conf(directory, port, bind), private=False),
        _write(directory / WORLD_FILE, json.dumps(world, indent=2) + "\n", private=True),
    ]
    for folder, parties in ((ACTORS_DIR, keys.actors), (FLEETS_DIR, keys.fleets)):
        for party in parties:
            doc = actor_document(keys, party, broker_url, run_prefix)
            written.append(_write(directory / folder / f"{party}.json", json.dumps(doc, indent=2) + "\n", True))
    return written


MAX_JSON_BYTES = 1 << 20  # a world.json, an actor's or a fleet's file: a few kB (a CA and a password)


def _read_json(path: Path) -> dict[str, Any]:
    # (a FIFO planted as world.json hung v2x run; one nested 200,000 levels deep was a RecursionError traceback:
    # attack review 7)
    try:
        raw = read_regular(path, MAX_JSON_BYTES + 1)
        if raw is None:
            raise SecureDirError(f"{path}: not a regular file: not a file of 'v2x secure init'")
        if len(raw) > MAX_JSON_BYTES:
            raise SecureDirError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB: not a file of 'v2x secure init'")
        doc = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise SecureDirError(f"{path}: not found (write it with 'v2x secure init')") from None
    except RecursionError:
        raise SecureDirError(f"{path}: nested too deeply: not a file of 'v2x secure init'") from None
    except (OSError, ValueError) as exc:  # (not UTF-8, not JSON)
        raise SecureDirError(f"{path}: cannot read it: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SecureDirError(f"{path}: not a {FORMAT!r} file of 'v2x secure init'")
    for key, kind in (("username", str), ("password", str), ("run_id", str), ("scenario", str), ("run_ids", dict)):
        if not isinstance(doc.get(key), kind):
            raise SecureDirError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    # (an edited or planted file: a run id that is no topic level gave a traceback in v2x run: attack review 5)
    ids = [doc["run_id"], *doc["run_ids"].values()]
    if not all(isinstance(x, str) and topics.valid_id(x) for x in ids):
        raise SecureDirError(f"{path}: 'run_id' and 'run_ids' must be run ids (1-64 of A-Z a-z 0-9 _ . -)")
    if "ca_pem" in doc:
        from cryptography import x509

        try:
            x509.load_pem_x509_certificate(str(doc["ca_pem"]).encode())
        except ValueError:
            raise SecureDirError(f"{path}: field 'ca_pem' is not a PEM certificate") from None
    return doc


@dataclass(frozen=True)
class SecureDir:
    """A directory of ``v2x secure init``, read back: the run's prefix, its broker URL and its keys."""

    path: Path
    run_prefix: str
    broker: str
    keys: RunKeys


def load_secure_dir(directory: Path) -> SecureDir:
    """Read the world's file and every actor's file of ``directory``."""
    world = _read_json(directory / WORLD_FILE)
    logins: dict[str, dict[str, Login]] = {ACTORS_DIR: {}, FLEETS_DIR: {}}
    for folder, parties in logins.items():
        for path in sorted((directory / folder).glob("*.json")):
            doc = _read_json(path)
            parties[str(doc.get("actor_id", path.stem))] = Login(doc["username"], doc["password"])
    keys = RunKeys(
        scenario_id=world["scenario"],
        run_ids={str(k): str(v) for k, v in world["run_ids"].items()},
        world=Login(world["username"], world["password"]),
        actors=logins[ACTORS_DIR],
        ca_pem=world.get("ca_pem") if isinstance(world.get("ca_pem"), str) else None,
        fleets=logins[FLEETS_DIR],
    )
    return SecureDir(directory, world["run_id"], str(world.get("broker", "")), keys)


@dataclass(frozen=True)
class ActorCredentials:
    """An actor's file of ``v2x secure init`` (for outside stacks, ``v2x.sdk.Stack.from_credentials``), or a
    fleet's (``fleet``: for ``v2x worker --credentials``; ``fleets``: the N of ``--workers N`` it was made for)."""

    actor_id: str
    run_ids: dict[str, str]
    broker: BrokerAddress
    run_prefix: str = ""
    fleet: bool = False
    fleets: int = 0

    def run_id(self, variant: str) -> str:
        if variant not in self.run_ids:
            raise SecureDirError(f"no run of variant {variant!r} (these are: {', '.join(self.run_ids)})")
        return self.run_ids[variant]


def load_actor_credentials(path: Path, broker: str | None = None) -> ActorCredentials:
    """An actor's credentials file, or a fleet's (``ActorCredentials.fleet``); ``broker``: another URL than the
    one written in it (same CA)."""
    from v2x.net.broker import BrokerURLError, parse_broker_url

    doc = _read_json(path)
    if not isinstance(doc.get("actor_id"), str):
        raise SecureDirError(f"{path}: field 'actor_id' is missing: not an actor's file")
    url = broker or str(doc.get("broker", ""))
    try:
        address = parse_broker_url(url)
    except BrokerURLError as exc:
        raise SecureDirError(f"{path}: {exc}") from None
    ca = doc.get("ca_pem") if isinstance(doc.get("ca_pem"), str) else None
    address = _with(address, Login(doc["username"], doc["password"]), ca)
    run_ids = {str(k): str(v) for k, v in doc["run_ids"].items()}
    fleets = doc.get("fleets") if doc.get("fleet") is True else 0
    if not isinstance(fleets, int) or isinstance(fleets, bool) or fleets < 0:
        raise SecureDirError(f"{path}: field 'fleets' is not a number of fleets")
    return ActorCredentials(doc["actor_id"], run_ids, address, doc["run_id"], doc.get("fleet") is True, fleets)
