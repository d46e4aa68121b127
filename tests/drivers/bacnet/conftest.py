from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controlcenter.model import TagDef
from plc_sim.servers.bacnet.server import BacnetDeviceServer
from tests.drivers.bacnet.bacnet_support import Model, build_device, tags_of


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
async def server(model: Model) -> AsyncIterator[BacnetDeviceServer]:
    served = BacnetDeviceServer(build_device(model))
    await served.start()
    yield served
    await served.stop()


@pytest.fixture
def tags(server: BacnetDeviceServer) -> dict[str, TagDef]:
    return tags_of(server)
