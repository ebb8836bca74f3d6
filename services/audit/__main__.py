"""`python -m services.audit`: the hash-chained audit log. `python -m services.audit verify --tenant T`
recomputes a tenant's chain from the database and exits 1 naming the first broken record."""

import argparse
import json
import sys

from services.audit.bootstrap import SERVICE, bootstrap, connect_audit_log
from services.audit.config import AuditSettings
from services.audit.handlers import verify_tenant_chain
from services.common.http import serve_service
from services.common.logging import configure_logging
from services.common.startup import run_service


async def verify(tenant_id: str) -> None:
    settings = AuditSettings()  # type: ignore[call-arg]
    configure_logging(SERVICE, "WARNING")
    pool, log = await connect_audit_log(settings)
    try:
        verdict = await verify_tenant_chain(tenant_id, log)
    finally:
        await pool.close()
    print(json.dumps({"tenant_id": tenant_id, **verdict.__dict__}))
    if not verdict.ok:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.audit")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="consume and serve the API (default)")
    verify_command = commands.add_parser("verify", help="verify one tenant's chain")
    verify_command.add_argument("--tenant", required=True)
    args = parser.parse_args()
    if args.command == "verify":
        run_service(lambda: verify(args.tenant))
    else:
        run_service(lambda: serve_service(SERVICE, AuditSettings, bootstrap))


if __name__ == "__main__":
    main()
