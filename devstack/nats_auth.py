"""The bus's trust for `make dev` and the tests: operator, system account and the application account REVISIT,
the nats-server configuration that enforces them, and a `.creds` file per user.

Keys are created once and kept (like devstack's JWT keys) so `.dev/` survives restarts: a device minted
yesterday still connects today, and a revocation pushed to the server stays in its resolver directory.
Production creates the same entities with `nsc` and keeps the seeds in a vault (docs/operations.md).
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import nkeys

from services.common.nats_auth import (
    FULL_ACCESS,
    SERVICE_ACCESS,
    DeviceScope,
    Permissions,
    account_claims,
    encode_jwt,
    issue_user,
    mint_device_credentials,
    new_seed,
    operator_jwt,
    public_key,
    service_permissions,
)

OPERATOR_NAME, SYSTEM_ACCOUNT_NAME, APPLICATION_ACCOUNT_NAME = "revisit", "SYS", "REVISIT"
ADMIN_USER, SYSTEM_USER = "admin", "system"
TRUST_FILE = "trust.json"


@dataclass(frozen=True)
class NatsTrust:
    """Seeds and JWTs of the operator and the two accounts. The identity keys sign only their JWTs; the
    signing keys issue (operator: accounts, account: users), so ops can rotate them without new identities."""

    operator_seed: str
    operator_signing_seed: str
    system_account_seed: str
    system_account_signing_seed: str
    account_seed: str
    account_signing_seed: str
    operator_jwt: str
    system_account_jwt: str
    account_jwt: str

    @property
    def account(self) -> str:
        return public_key(self.account_seed)

    @property
    def system_account(self) -> str:
        return public_key(self.system_account_seed)


def create_trust() -> NatsTrust:
    """A new operator with a signing key, its system account and the application account (JetStream enabled)."""
    operator, operator_signing = new_seed(nkeys.PREFIX_BYTE_OPERATOR), new_seed(nkeys.PREFIX_BYTE_OPERATOR)
    system, system_signing = new_seed(nkeys.PREFIX_BYTE_ACCOUNT), new_seed(nkeys.PREFIX_BYTE_ACCOUNT)
    account, account_signing = new_seed(nkeys.PREFIX_BYTE_ACCOUNT), new_seed(nkeys.PREFIX_BYTE_ACCOUNT)
    system_claims = account_claims(
        public_key(system), SYSTEM_ACCOUNT_NAME, [public_key(system_signing)], jetstream=False
    )
    application_claims = account_claims(
        public_key(account), APPLICATION_ACCOUNT_NAME, [public_key(account_signing)], jetstream=True
    )
    return NatsTrust(
        operator_seed=operator,
        operator_signing_seed=operator_signing,
        system_account_seed=system,
        system_account_signing_seed=system_signing,
        account_seed=account,
        account_signing_seed=account_signing,
        operator_jwt=operator_jwt(operator, OPERATOR_NAME, [public_key(operator_signing)], public_key(system)),
        system_account_jwt=encode_jwt(system_claims, operator_signing),
        account_jwt=encode_jwt(application_claims, operator_signing),
    )


def load_or_create_trust(directory: Path) -> NatsTrust:
    """The trust kept under `directory` (readable by its owner only), created on the first call."""
    path = directory / TRUST_FILE
    if path.exists():
        return NatsTrust(**json.loads(path.read_text()))
    trust = create_trust()
    directory.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(asdict(trust), indent=2))
    return trust


def server_config(trust: NatsTrust, port: int, store_dir: Path, resolver_dir: Path) -> str:
    """nats-server configuration: JetStream, operator mode (no anonymous connections), the system account and a
    full resolver that keeps account JWTs in `resolver_dir` and accepts updates (and deletes) pushed at runtime
    through the system account. The two accounts are preloaded; a newer JWT already stored wins over them."""
    return f"""# written by devstack/nats_auth.py
host: 127.0.0.1
port: {port}
server_name: revisit-dev
# a client's CONNECT carries its user JWT; the matcher's (five buckets, nine consumers) passes the 4 KB default
max_control_line: 64KB
jetstream {{ store_dir: {json.dumps(str(store_dir))} }}
operator: {json.dumps(trust.operator_jwt)}
system_account: {trust.system_account}
resolver {{
  type: full
  dir: {json.dumps(str(resolver_dir))}
  allow_delete: true
  interval: "2m"
  timeout: "1.9s"
}}
resolver_preload {{
  {trust.system_account}: {json.dumps(trust.system_account_jwt)}
  {trust.account}: {json.dumps(trust.account_jwt)}
}}
"""


def write_credentials(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)
    return path


def write_user_credentials(trust: NatsTrust, directory: Path) -> dict[str, Path]:
    """`<name>.creds` for every service (least privilege), `admin` (everything in REVISIT: tests and operators'
    tools) and `system` (the system account: pushing account updates). Issued afresh at every start."""
    users: dict[str, tuple[str, str, Permissions]] = {
        name: (trust.account, trust.account_signing_seed, service_permissions(name)) for name in SERVICE_ACCESS
    }
    users[ADMIN_USER] = (trust.account, trust.account_signing_seed, FULL_ACCESS)
    users[SYSTEM_USER] = (trust.system_account, trust.system_account_signing_seed, FULL_ACCESS)
    return {
        name: write_credentials(directory / f"{name}.creds", issue_user(name, account, seed, permissions).text)
        for name, (account, seed, permissions) in users.items()
    }


def write_device_credentials(trust: NatsTrust, scope: DeviceScope, name: str, directory: Path) -> Path:
    """A device's `.creds` for the demo edge (identity's device registry will mint these later)."""
    minted = mint_device_credentials(scope, name, trust.account, trust.account_signing_seed)
    return write_credentials(directory / f"{name}.creds", minted.text)


def device_authority_environment(trust: NatsTrust, nats_url: str, system_credentials: Path) -> dict[str, str]:
    """What identity's device registry needs (REVISIT_NATS_*): the URL devices get, the account they belong
    to, the signing seeds that mint and revoke them, and the system user that pushes a revocation."""
    return {
        "REVISIT_NATS_PUBLIC_URL": nats_url,
        "REVISIT_NATS_ACCOUNT": trust.account,
        "REVISIT_NATS_ACCOUNT_SIGNING_SEED": trust.account_signing_seed,
        "REVISIT_NATS_OPERATOR_SIGNING_SEED": trust.operator_signing_seed,
        "REVISIT_NATS_SYSTEM_CREDENTIALS": str(system_credentials),
    }
