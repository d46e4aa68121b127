"""What a Read must honour, on both of a device server's Read paths (OPC UA Part 4, 5.10.2).

- The request's parameters: an empty NodesToRead is Bad_NothingToDo, more nodes than the
  advertised MaxNodesPerRead (Part 5, 6.3.11 OperationLimits) Bad_TooManyOperations, a negative
  MaxAge Bad_MaxAgeInvalid, a TimestampsToReturn outside Source/Server/Both/Neither
  Bad_TimestampsToReturnInvalid; each answered as the Read's ServiceResult (a ServiceFault).
- TimestampsToReturn (Part 4, 7.40): a value carries the SourceTimestamp when Source or Both is
  asked, and only for the Value attribute (Part 4, 7.11: other attributes have no source time);
  the ServerTimestamp when Server or Both is asked, and it is the time of the Read, the server's
  current time, not the time the value last changed: a client judging staleness by it must see
  that a steady value is still being served.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

SOURCE = ua.TimestampsToReturn.Source.value
SERVER = ua.TimestampsToReturn.Server.value
BOTH = ua.TimestampsToReturn.Both.value
NEITHER = ua.TimestampsToReturn.Neither.value

WITH_SOURCE = frozenset({SOURCE, BOTH})
"""TimestampsToReturn values that ask for the SourceTimestamp."""
WITH_SERVER = frozenset({SERVER, BOTH})
"""TimestampsToReturn values that ask for the ServerTimestamp."""


def check_read(nodes: int, max_age: float, timestamps: int, max_nodes: int) -> None:
    """Raise the Read's ServiceResult (a UaStatusCodeError) for parameters it must refuse."""
    if nodes == 0:
        raise _refusal(StatusCodes.BadNothingToDo)
    if 0 < max_nodes < nodes:
        raise _refusal(StatusCodes.BadTooManyOperations)
    if max_age < 0:
        raise _refusal(StatusCodes.BadMaxAgeInvalid)
    if timestamps not in (SOURCE, SERVER, BOTH, NEITHER):
        raise _refusal(StatusCodes.BadTimestampsToReturnInvalid)


def _refusal(code: int) -> UaStatusCodeError:
    """asyncua's error of a status code; its processor answers it as a ServiceFault."""
    return UaStatusCodeError(code)  # type: ignore[no-untyped-call]


def stamped(value: ua.DataValue, attribute_id: int, timestamps: int, now: datetime) -> ua.DataValue:
    """``value`` as the Read returns it: the timestamps asked for, the server's now as its
    ServerTimestamp. A new DataValue: the address space's own is shared and never changed."""
    source = timestamps in WITH_SOURCE and attribute_id == AttributeIds.Value
    server = timestamps in WITH_SERVER
    # Typed Any: asyncua annotates the fields with marker classes plain values are not.
    fields: Any = {
        "StatusCode": value.StatusCode,
        "SourceTimestamp": value.SourceTimestamp if source else None,
        "SourcePicoseconds": value.SourcePicoseconds if source else None,
        "ServerTimestamp": now if server else None,
    }
    return ua.DataValue(value.Value, **fields)
