"""Collections: RUN, TAGGED, CHAINED and CALIBRATION; chains and tag membership."""

from __future__ import annotations

import enum
import fnmatch
import logging
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from pachon.core.errors import CollectionError, ConflictError
from pachon.repo.refs import DatasetRef

__all__ = ["CollectionType", "CollectionsMixin"]

_log = logging.getLogger(__name__)


class CollectionType(enum.StrEnum):
    """The kinds of collection."""

    RUN = "RUN"
    TAGGED = "TAGGED"
    CHAINED = "CHAINED"
    CALIBRATION = "CALIBRATION"


def _ctype(value: str | CollectionType) -> CollectionType:
    try:
        return CollectionType(value.upper() if isinstance(value, str) else value)
    except ValueError:
        raise CollectionError(
            f"unknown collection type {value!r}; use one of {', '.join(t.value for t in CollectionType)}"
        ) from None


class CollectionsMixin:
    """Collection methods of the registry (needs ``self.db`` and ``self._collection_cache``)."""

    def register_collection(
        self,
        name: str,
        type: str | CollectionType = CollectionType.RUN,  # noqa: A002
        doc: str | None = None,
    ) -> bool:
        """Create a collection; return False when it already exists with the same type.

        Raises
        ------
        CollectionError
            It exists with another type.
        """
        ctype = _ctype(type)
        if not name or not isinstance(name, str):
            raise CollectionError(f"collection name must be a non-empty string, got {name!r}")
        table = self.db.tables["collection"]
        try:
            with self.db.transaction() as conn:
                row = conn.execute(sa.select(table.c.id, table.c.type).where(table.c.name == name)).first()
                if row is not None:
                    if row.type != ctype.value:
                        raise CollectionError(
                            f"collection {name!r} exists as {row.type}, not {ctype.value}"
                        )
                    return False
                conn.execute(table.insert().values(name=name, type=ctype.value, doc=doc))
        except sa.exc.IntegrityError:
            if self.db._conn is not None:
                raise
            return self.register_collection(name, ctype, doc)  # created concurrently: compare
        _log.debug("registered %s collection %s", ctype.value, name)
        return True

    def _collection(self, name: str, conn: sa.Connection | None = None) -> tuple[int, CollectionType]:
        hit = self._collection_cache.get(name)
        if hit is not None:
            return hit
        table = self.db.tables["collection"]
        with self.db.reading() as c:
            row = (conn or c).execute(sa.select(table.c.id, table.c.type).where(table.c.name == name)).first()
        if row is None:
            raise CollectionError(f"collection {name!r} does not exist; see `pachon query collections`")
        hit = (row.id, CollectionType(row.type))
        self._collection_cache[name] = hit
        return hit

    def collection_type(self, name: str) -> CollectionType:
        """Type of collection ``name`` (raises `CollectionError` when it does not exist)."""
        return self._collection(name)[1]

    def list_collections(
        self, pattern: str | None = None, types: Iterable[str | CollectionType] | None = None
    ) -> list[tuple[str, CollectionType]]:
        """Collections as ``(name, type)``, sorted by name, filtered by a glob and types."""
        table = self.db.tables["collection"]
        with self.db.reading() as conn:
            rows = conn.execute(sa.select(table.c.name, table.c.type).order_by(table.c.name)).all()
        wanted = {_ctype(t) for t in types} if types else None
        return [
            (r.name, CollectionType(r.type))
            for r in rows
            if (pattern is None or fnmatch.fnmatchcase(r.name, pattern))
            and (wanted is None or CollectionType(r.type) in wanted)
        ]

    def set_chain(self, parent: str, children: Sequence[str]) -> None:
        """Define a CHAINED collection's ordered children (searched first to last).

        The chain is created when missing.  Cycles raise `CollectionError`.
        """
        self.register_collection(parent, CollectionType.CHAINED)
        pid, ptype = self._collection(parent)
        if ptype is not CollectionType.CHAINED:
            raise CollectionError(f"collection {parent!r} is {ptype.value}, not CHAINED")
        ids = [self._collection(c)[0] for c in children]
        for child in children:
            if child == parent or parent in self._chain_members(child):
                raise CollectionError(f"chaining {child!r} into {parent!r} would make a cycle")
        table = self.db.tables["collection_chain"]
        with self.db.transaction() as conn:
            conn.execute(table.delete().where(table.c.parent_id == pid))
            if ids:
                conn.execute(
                    table.insert(),
                    [{"parent_id": pid, "position": i, "child_id": c} for i, c in enumerate(ids)],
                )

    def get_chain(self, parent: str) -> list[str]:
        """Children of a CHAINED collection, in search order."""
        pid, ptype = self._collection(parent)
        if ptype is not CollectionType.CHAINED:
            raise CollectionError(f"collection {parent!r} is {ptype.value}, not CHAINED")
        chain, coll = self.db.tables["collection_chain"], self.db.tables["collection"]
        q = (
            sa.select(coll.c.name)
            .join(chain, chain.c.child_id == coll.c.id)
            .where(chain.c.parent_id == pid)
            .order_by(chain.c.position)
        )
        with self.db.reading() as conn:
            return list(conn.execute(q).scalars())

    def _chain_members(self, name: str) -> set[str]:
        """Every collection reachable from ``name`` through chains (chains included)."""
        out, todo = set(), [name]
        while todo:
            cur = todo.pop()
            if cur in out:
                continue
            out.add(cur)
            if self._collection(cur)[1] is CollectionType.CHAINED:
                todo += self.get_chain(cur)
        return out

    def _flatten(self, names: Iterable[str], seen: set[str]) -> list[tuple[str, int, CollectionType]]:
        out: list[tuple[str, int, CollectionType]] = []
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            cid, ctype = self._collection(name)
            if ctype is CollectionType.CHAINED:
                out += self._flatten(self.get_chain(name), seen)
            else:
                out.append((name, cid, ctype))
        return out

    def resolve_collections(self, collections: str | Sequence[str]) -> list[tuple[str, int, CollectionType]]:
        """Flatten chains into the ordered list ``(name, id, type)`` of searched collections."""
        if isinstance(collections, str):
            collections = [collections]
        if not collections:
            raise CollectionError("no collections given to search; pass collections=[...]")
        return self._flatten(collections, set())

    def associate(self, tag: str, refs: Iterable[DatasetRef]) -> None:
        """Add datasets to a TAGGED collection (one dataset per type and data ID)."""
        tid, ttype = self._collection(tag)
        if ttype is not CollectionType.TAGGED:
            raise CollectionError(f"collection {tag!r} is {ttype.value}; associate needs a TAGGED one")
        table = self.db.tables["dataset_tag"]
        with self.db.transaction() as conn:
            rows = self._dataset_rows(conn, [r.id for r in refs])
            for row in rows:
                other = conn.execute(
                    sa.select(table.c.dataset_id).where(
                        table.c.collection_id == tid,
                        table.c.dataset_type_id == row.dataset_type_id,
                        table.c.data_key == row.data_key,
                    )
                ).scalar()
                if other == row.id:
                    continue
                if other is not None:
                    raise ConflictError(
                        f"TAGGED collection {tag!r} already holds dataset {other} for data "
                        f"ID {row.data_key}; disassociate it first"
                    )
                conn.execute(
                    table.insert().values(
                        collection_id=tid,
                        dataset_id=row.id,
                        dataset_type_id=row.dataset_type_id,
                        data_key=row.data_key,
                    )
                )

    def disassociate(self, tag: str, refs: Iterable[DatasetRef]) -> None:
        """Remove datasets from a TAGGED collection (absent ones are ignored)."""
        tid, ttype = self._collection(tag)
        if ttype is not CollectionType.TAGGED:
            raise CollectionError(f"collection {tag!r} is {ttype.value}; disassociate needs a TAGGED one")
        table = self.db.tables["dataset_tag"]
        with self.db.transaction() as conn:
            conn.execute(
                table.delete().where(
                    table.c.collection_id == tid, table.c.dataset_id.in_([r.id for r in refs])
                )
            )

    def chain_parents(self, name: str) -> list[str]:
        """Names of the CHAINED collections that list ``name`` as a child."""
        cid, _ = self._collection(name)
        chain, coll = self.db.tables["collection_chain"], self.db.tables["collection"]
        q = (
            sa.select(coll.c.name)
            .join(chain, chain.c.parent_id == coll.c.id)
            .where(chain.c.child_id == cid)
            .order_by(coll.c.name)
        )
        with self.db.reading() as conn:
            return list(dict.fromkeys(conn.execute(q).scalars()))

    def run_dataset_ids(self, run: str) -> list:
        """Ids of every dataset in RUN collection ``run``."""
        cid, _ = self._collection(run)
        ds = self.db.tables["dataset"]
        with self.db.reading() as conn:
            return list(conn.execute(sa.select(ds.c.id).where(ds.c.run_id == cid)).scalars())

    def remove_collection(self, name: str) -> None:
        """Delete an empty collection (a RUN must hold no datasets; chains referencing it block)."""
        cid, ctype = self._collection(name)
        ds, chain = self.db.tables["dataset"], self.db.tables["collection_chain"]
        with self.db.transaction() as conn:
            if (
                ctype is CollectionType.RUN
                and conn.execute(sa.select(ds.c.id).where(ds.c.run_id == cid).limit(1)).first()
            ):
                raise CollectionError(f"RUN {name!r} still holds datasets; prune them first")
            if conn.execute(sa.select(chain.c.parent_id).where(chain.c.child_id == cid).limit(1)).first():
                raise CollectionError(
                    f"collection {name!r} is part of a CHAINED collection; unchain it first"
                )
            conn.execute(
                self.db.tables["collection"].delete().where(self.db.tables["collection"].c.id == cid)
            )
        self._collection_cache.pop(name, None)
