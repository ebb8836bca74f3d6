"""What ingest accepts in a crops erasure request, and the names of its step: checks that need no I/O."""

from schemas import CropsErasureRequested
from services.common.bus import InvalidEvent


def crops_to_erase(request: CropsErasureRequested) -> list[str]:
    """The distinct keys of the batch, in order; raises InvalidEvent if the batch is not this tenant's to erase.

    Crop keys start with `<tenant>/` (`validation.crop_key`), so a key outside that prefix is another
    tenant's crop, or no crop at all: the whole batch is refused, so a tenant can never erase another's."""
    if request.batch >= request.batches:
        raise InvalidEvent(f"batch {request.batch} is not below batches ({request.batches})")
    prefix = f"{request.tenant_id}/"
    foreign = [key for key in request.crop_keys if not key.startswith(prefix) or len(key) == len(prefix)]
    if foreign:
        raise InvalidEvent(
            f"{len(foreign)} of {len(request.crop_keys)} crop keys are outside tenant {request.tenant_id}'s "
            f"prefix {prefix!r}; the batch is refused and nothing was deleted"
        )
    return list(dict.fromkeys(request.crop_keys))


def erasure_step(request: CropsErasureRequested) -> str:
    """The saga step this batch completes: `crops/<batch>`, one per batch, so batches complete independently."""
    return f"crops/{request.batch}"
