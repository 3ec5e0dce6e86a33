"""``pickup-hub orders import FILE``: orders from a spreadsheet export, all or nothing.

CSV (a header row, UTF-8, with or without a BOM) or JSON (one object, an
array, or JSON lines). Every row is judged like an API request
(:meth:`hub.orders.OrderBook.create`); every row's error is reported with
its line, and only when none has one is anything stored, in one
transaction.

CSV columns (order does not matter; ``site`` may be left out when hub.toml
has one site): ``site, order_id, status, slot, customer_name, phone_tail,
items, pickup_no, expires_at, backup_code``. ``items`` is
``name:qty:unit`` entries separated by ``;`` (``红提:1:盒;牛奶:2:瓶``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.errors import RequestError
from hub.orders import OrderBook
from protocol.canonical import check_value, loads_documents
from protocol.errors import ValidationError

CSV_COLUMNS = (
    "site",
    "order_id",
    "status",
    "slot",
    "customer_name",
    "phone_tail",
    "items",
    "pickup_no",
    "expires_at",
    "backup_code",
)
MAX_ROWS = 10000
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RowError:
    line: int
    field: str | None
    error: str

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"line {self.line}{where}: {self.error}"


class ImportFailed(RequestError):
    """Some rows are wrong; ``errors`` lists each with its line. Nothing was stored."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} row(s) with errors; nothing was stored", None, 422)
        self.errors = errors


def _items(text: str) -> list[dict[str, Any]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        bits = part.split(":")
        if len(bits) > 3 or not bits[0]:
            raise RequestError("items are name:qty:unit entries separated by ';'", "items", 422)
        qty: Any = 1
        if len(bits) > 1 and bits[1]:
            try:
                qty = float(bits[1]) if "." in bits[1] else int(bits[1])
            except ValueError:
                raise RequestError(f"item {bits[0]!r}: qty is not a number", "items", 422) from None
        out.append({"name": bits[0], "qty": qty, "unit": bits[2] if len(bits) > 2 else ""})
    return out


def _csv_rows(
    text: str, default_site: str | None
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        yield 1, RowError(1, unknown[0], "unknown column; columns are " + ", ".join(CSV_COLUMNS))
        return
    for row in reader:
        line = reader.line_num
        if None in row:
            yield line, RowError(line, None, "more cells than columns")
            continue
        cells = {k: (v or "").strip() for k, v in row.items()}
        try:
            body: dict[str, Any] = {
                "order_id": cells.get("order_id", ""),
                "status": cells.get("status", ""),
            }
            if cells.get("slot"):
                body["slot"] = cells["slot"]
            if cells.get("customer_name") or cells.get("phone_tail"):
                body["customer"] = {
                    "name": cells.get("customer_name", ""),
                    "phone_tail": cells.get("phone_tail", ""),
                }
            if cells.get("items"):
                body["items"] = _items(cells["items"])
            for key in ("pickup_no", "expires_at"):
                if cells.get(key):
                    body[key] = cells[key]
            if cells.get("backup_code"):
                flag = cells["backup_code"].lower()
                if flag not in ("true", "false", "yes", "no", "1", "0"):
                    raise RequestError("backup_code must be true or false", "backup_code", 422)
                body["backup_code"] = flag in ("true", "yes", "1")
        except RequestError as err:
            yield line, RowError(line, err.field, err.error)
            continue
        site = cells.get("site") or default_site
        yield line, {"site": site, **body}


def _json_rows(
    text: str, default_site: str | None
) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    try:
        docs = loads_documents(text)
    except ValidationError as err:
        yield 1, RowError(1, None, str(err))
        return
    for number, doc in enumerate(docs, 1):
        if isinstance(doc, ValidationError):
            yield number, RowError(number, None, str(doc))
            continue
        if not isinstance(doc, dict):
            yield number, RowError(number, None, "each order must be a JSON object")
            continue
        try:
            check_value(doc)
        except ValidationError as err:
            yield number, RowError(number, None, str(err))
            continue
        body = dict(doc)
        body.setdefault("site", default_site)
        yield number, body


def read_rows(path: Path, default_site: str | None) -> list[tuple[int, dict[str, Any] | RowError]]:
    """The rows of a file (each a body with ``site``, or its error). Raises RequestError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RequestError(f"cannot read {path}: {exc.strerror}", "FILE") from None
    return rows_from_bytes(raw, path.suffix.lower(), default_site, str(path))


def rows_from_bytes(
    raw: bytes, suffix: str, default_site: str | None, name: str = "the file"
) -> list[tuple[int, dict[str, Any] | RowError]]:
    """The rows of an uploaded or read file (``suffix`` ``.csv`` or ``.json``)."""
    if len(raw) > MAX_FILE_BYTES:
        raise RequestError(f"{name} is larger than {MAX_FILE_BYTES} bytes", "FILE")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(
            f"{name} is not UTF-8 text (save the spreadsheet as UTF-8 CSV)", "FILE"
        ) from None
    if suffix == ".csv":
        rows = list(_csv_rows(text, default_site))
    elif suffix in (".json", ".jsonl", ".ndjson"):
        rows = list(_json_rows(text, default_site))
    else:
        raise RequestError(f"{name}: give a .csv or .json file", "FILE")
    if len(rows) > MAX_ROWS:
        raise RequestError(f"{name} has more than {MAX_ROWS} rows; split it", "FILE")
    return rows


@dataclass(frozen=True)
class RowResult:
    """One row of a preview: the order it would create, or its error."""

    line: int
    order: dict[str, Any] | None
    error: RowError | None


class _DryRun(Exception):
    """Raised inside the preview's transaction so that nothing is kept."""


def preview_rows(
    book: OrderBook,
    rows: list[tuple[int, dict[str, Any] | RowError]],
    now: float,
    *,
    client: str = "import",
) -> list[RowResult]:
    """Every row judged exactly as :func:`import_orders` would, then rolled back."""
    out: list[RowResult] = []
    try:
        with book.db.atomic():
            _create_all(
                book,
                [(line, dict(r) if isinstance(r, dict) else r) for line, r in rows],
                now,
                client,
                out,
            )
            raise _DryRun
    except _DryRun:
        pass
    return out


def _create_all(
    book: OrderBook,
    rows: list[tuple[int, dict[str, Any] | RowError]],
    now: float,
    client: str,
    out: list[RowResult],
) -> None:
    seen: set[tuple[str, str]] = set()
    for line, row in rows:
        if isinstance(row, RowError):
            out.append(RowResult(line, None, row))
            continue
        site = row.pop("site", None)
        if not isinstance(site, str) or book.cfg.site(site) is None:
            out.append(
                RowResult(line, None, RowError(line, "site", "site must be a site in hub.toml"))
            )
            continue
        key = (site, str(row.get("order_id")))
        if key in seen:
            out.append(
                RowResult(
                    line,
                    None,
                    RowError(line, "order_id", "this order_id appears twice in the file"),
                )
            )
            continue
        seen.add(key)
        try:
            out.append(RowResult(line, book.create(site, row, now, client=client).body, None))
        except RequestError as err:
            out.append(RowResult(line, None, RowError(line, err.field, err.error)))


def import_orders(
    book: OrderBook, path: Path, now: float, *, client: str = "import"
) -> list[dict[str, Any]]:
    """Create every order of the file, or none. Raises ImportFailed listing each bad row."""
    default = book.cfg.sites[0].id if len(book.cfg.sites) == 1 else None
    return store_rows(book, read_rows(path, default), now, client=client)


def store_rows(
    book: OrderBook,
    rows: list[tuple[int, dict[str, Any] | RowError]],
    now: float,
    *,
    client: str = "import",
) -> list[dict[str, Any]]:
    """Create every row's order, or none (ImportFailed lists each bad row)."""
    out: list[RowResult] = []
    with book.db.atomic():
        _create_all(book, rows, now, client, out)
        errors = [r.error for r in out if r.error is not None]
        if errors:
            raise ImportFailed(errors)  # rolls the whole transaction back
    return [r.order for r in out if r.order is not None]


def describe_rows(created: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(o, ensure_ascii=False) for o in created)
