"""Deterministic identities: every id is uuid5 of the scenario seed and the thing it names,
so a second run sends the same ids and the services answer `unchanged`."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

from shared.identity import resident_id_check_digit

# administrative division codes of the district's people, and of where returnees came from
HOME_REGIONS = ("510121", "510122", "510104", "510105", "411702")
RISK_REGION = "420106"  # 武汉市武昌区
OTHER_REGIONS = ("310101", "440305", "110105")


class Ids:
    def __init__(self, seed: int) -> None:
        self.namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"grid-epi:scenario:{seed}")

    def of(self, *subject: object) -> str:
        return str(uuid.uuid5(self.namespace, "/".join(str(s) for s in subject)))


class Documents:
    """Valid GB 11643 resident ID numbers (region, birth date, sequence, check digit), each
    issued once."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.issued: set[str] = set()

    def resident_id(self, region: str | None = None, born: date | None = None) -> str:
        while True:
            where = region or self.rng.choice(HOME_REGIONS)
            when = born or date(1940, 1, 1) + timedelta(days=self.rng.randrange(29000))
            first17 = f"{where}{when:%Y%m%d}{self.rng.randrange(1000):03d}"
            number = first17 + resident_id_check_digit(first17)
            if number not in self.issued:
                self.issued.add(number)
                return number

    def phone(self) -> str:
        return f"1{self.rng.choice('3578')}{self.rng.randrange(10**9):09d}"
