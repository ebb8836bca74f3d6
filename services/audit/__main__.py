"""`python -m services.audit`: the hash-chained audit log. `python -m services.audit verify --tenant T`
recomputes a tenant's chain from the database, holds it against the signed checkpoints in NATS, and exits
1 naming the first broken record or checkpoint; beside `make dev` it needs no variable (`.dev/env/audit.json`)."""

import argparse
import json
import sys

import nats

from services.audit.adapters.checkpoints import CheckpointStore
from services.audit.adapters.postgres import AuditLog
from services.audit.bootstrap import SERVICE, connect_audit_pool, verification_keys
from services.audit.bootstrap import bootstrap as bootstrap_service
from services.audit.config import AuditSettings
from services.audit.handlers import verify_tenant_chain
from services.common.devsettings import command_settings
from services.common.http import serve_service
from services.common.logging import configure_logging
from services.common.startup import run_service


async def verify(tenant_id: str) -> None:
    settings = command_settings(AuditSettings, SERVICE)
    configure_logging(SERVICE, "WARNING")
    pool = await connect_audit_pool(settings)
    try:
        credentials = str(settings.nats_credentials) if settings.nats_credentials else None
        connection = await nats.connect(
            settings.nats_url, connect_timeout=5, max_reconnect_attempts=2, user_credentials=credentials
        )
        try:
            store = CheckpointStore(connection.jetstream())
            verdict = await verify_tenant_chain(tenant_id, AuditLog(pool), store, verification_keys(settings))
        finally:
            await connection.close()
    finally:
        await pool.close()
    print(json.dumps({"tenant_id": tenant_id, **verdict.__dict__}))
    if not verdict.ok:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.audit")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="consume and serve the API (default)")
    verify_command = commands.add_parser("verify", help="verify one tenant's chain and its signed checkpoints")
    verify_command.add_argument("--tenant", required=True)
    args = parser.parse_args()
    if args.command == "verify":
        run_service(lambda: verify(args.tenant))
    else:
        run_service(lambda: serve_service(SERVICE, AuditSettings, bootstrap_service))


if __name__ == "__main__":
    main()
