"""The bench's handle on a Stash double process (`double_main.py`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from childproc import JsonLineChild
from stash.sizes import StashSizes

MAIN = Path(__file__).resolve().with_name("double_main.py")


class DoubleProcess(JsonLineChild):
    name = "Stash double"

    def __init__(self, sizes: StashSizes, log_path: Path) -> None:
        argv = [sys.executable, str(MAIN), json.dumps(dataclasses.asdict(sizes))]
        super().__init__(argv, log_path)
        self.api_key: str = self.hello["api_key"]

    def graphql_requests(self) -> int:
        return int(self.call("stats")["graphql_requests"])
