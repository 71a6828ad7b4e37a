"""Everything PostgreSQL stores for the schema ``agent``, read into one snapshot; two
snapshots compared; the SQL that turns one into the other.

One differ serves every question ``schema_check`` asks (code against migrations, live
database against migrations): :func:`snapshot` reads the catalog, :func:`diff` lists
the differences, :func:`plan` writes the statements that take a database from one
snapshot to the other.

What a snapshot holds, each compared by the definition PostgreSQL itself prints
(``pg_get_*def`` with an empty ``search_path``, so every name is schema-qualified):

* tables: persistence, storage parameters, row level security (enabled, forced),
  replica identity, inheritance, partitioning, comment;
* columns: type and typmod, NOT NULL, default, identity, generated expression,
  collation, storage, compression, statistics target, comment (not their order);
* constraints (CHECK, UNIQUE, PRIMARY KEY, FOREIGN KEY, EXCLUDE) by name *and* full
  definition: columns, ON UPDATE / ON DELETE, MATCH, DEFERRABLE, NOT VALID;
* indexes by definition, validity, readiness, liveness and clustering (indexes that
  back a constraint are compared through the constraint);
* triggers by definition and enabled state;
* functions and procedures by identity arguments and full definition (result,
  language, SECURITY DEFINER, SET settings, volatility, strictness, leakproof,
  parallel safety, cost, body), overloads each on their own;
* views and materialized views (definition, options), sequences (options, owner
  column), policies, rules, types (enum labels, domains, composite types, ranges),
  comments on all of these, and anything else in the schema (operators, collations,
  statistics objects, text search objects, extensions ...) by identity.

Not compared: owners and privileges (they depend on who ran the migrations), column
order, OIDs, statistics. Extension members are reported as their extension.

Every identifier in generated SQL is double-quoted by :func:`ident`, or comes from
PostgreSQL's own ``pg_get_*def`` / ``quote_ident``: a name such as
``x; DROP SCHEMA agent CASCADE; --`` stays a name.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

SCHEMA = "agent"


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (always quoted: safe for any name)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str | None) -> str:
    """``value`` as a SQL string literal (``NULL`` for None); E'' form never used."""
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def qualified(name: str, schema: str = SCHEMA) -> str:
    return f"{ident(schema)}.{ident(name)}"


@dataclass(frozen=True)
class Item:
    """One object of the schema.

    :param kind: ``table``, ``column``, ``constraint``, ``index``, ``trigger``,
        ``function``, ``view``, ``sequence``, ``policy``, ``rule``, ``type``,
        ``schema`` or ``object`` (anything else).
    :param name: how the report names it, unique within ``kind``.
    :param attrs: what is compared.
    :param ref: raw names needed to write SQL for it (not compared).
    """

    kind: str
    name: str
    attrs: Mapping[str, Any]
    ref: Mapping[str, Any] = field(default_factory=dict, compare=False)


Snapshot = dict[tuple[str, str], Item]


# --------------------------------------------------------------------------- #
# Reading the catalog
# --------------------------------------------------------------------------- #

_NOT_EXTENSION_MEMBER = """NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend dep
    WHERE dep.classid = '{catalog}'::pg_catalog.regclass AND dep.objid = {oid}
      AND dep.deptype = 'e')"""


def _own(catalog: str, oid: str) -> str:
    return _NOT_EXTENSION_MEMBER.format(catalog=catalog, oid=oid)


_RELATIONS = f"""
SELECT c.relname, c.relkind::text AS relkind, c.relpersistence::text AS persistence,
       coalesce(c.reloptions, '{{}}') AS reloptions, c.relrowsecurity, c.relforcerowsecurity,
       c.relreplident::text AS replident,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
       ARRAY(SELECT i.inhparent::pg_catalog.regclass::text FROM pg_catalog.pg_inherits i
              WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) AS parents,
       ARRAY(SELECT i.inhrelid::pg_catalog.regclass::text FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class ch ON ch.oid = i.inhrelid
              WHERE i.inhparent = c.oid AND ch.relnamespace <> c.relnamespace
              ORDER BY 1) AS outside_children,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END AS viewdef,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partkey,
       pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS partbound,
       am.amname, ts.spcname,
       (SELECT ri.relname FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class ri
                ON ri.oid = x.indexrelid
         WHERE x.indrelid = c.oid AND x.indisreplident) AS replident_index,
       s.seqtypid::pg_catalog.regtype::text AS seqtype, s.seqstart, s.seqincrement,
       s.seqmax, s.seqmin, s.seqcache, s.seqcycle,
       (SELECT oc.relname || '.' || oa.attname
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class oc ON oc.oid = d.refobjid
          JOIN pg_catalog.pg_attribute oa ON oa.attrelid = d.refobjid AND oa.attnum = d.refobjsubid
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.deptype = 'a' LIMIT 1) AS owned_by,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND d.objid = c.oid AND d.deptype = 'i') AS identity_sequence
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam AND c.relkind IN ('r', 'm')
  LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c.reltablespace
  LEFT JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND {_own("pg_catalog.pg_class", "c.oid")}
"""

_COLUMNS = f"""
SELECT c.relname, a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default,
       a.attidentity::text AS identity, a.attgenerated::text AS generated,
       CASE WHEN a.attcollation <> t.typcollation
            THEN (SELECT pg_catalog.quote_ident(cn.nspname) || '.' ||
                         pg_catalog.quote_ident(co.collname)
                    FROM pg_catalog.pg_collation co
                    JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                   WHERE co.oid = a.attcollation) END AS collation,
       CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END AS storage,
       t.typstorage::text AS typstorage,
       nullif(a.attcompression::text, '') AS compression,
       nullif(a.attstattarget::int, -1) AS stattarget,
       coalesce(a.attoptions, '{{}}') AS attoptions,
       CASE WHEN a.attidentity <> '' THEN
         (SELECT pg_catalog.format('INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s '
                                   'CACHE %s %s', s.seqincrement, s.seqmin, s.seqmax,
                                   s.seqstart, s.seqcache,
                                   CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END)
            FROM pg_catalog.pg_depend d2
            JOIN pg_catalog.pg_sequence s ON s.seqrelid = d2.objid
           WHERE d2.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
             AND d2.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
             AND d2.refobjid = c.oid AND d2.refobjsubid = a.attnum AND d2.deptype = 'i'
           LIMIT 1) END AS identity_options,
       -- NOT NULL constraints are catalogued (contype 'n') since PostgreSQL 18: no rows
       -- before, so these are NULL there.
       (SELECT k.conname FROM pg_catalog.pg_constraint k
         WHERE k.contype = 'n' AND k.conrelid = c.oid AND k.conkey[1] = a.attnum
         LIMIT 1) AS notnull_name,
       (SELECT nullif(concat_ws(' ', CASE WHEN NOT k.convalidated THEN 'NOT VALID' END,
                                     CASE WHEN k.connoinherit THEN 'NO INHERIT' END), '')
          FROM pg_catalog.pg_constraint k
         WHERE k.contype = 'n' AND k.conrelid = c.oid AND k.conkey[1] = a.attnum
         LIMIT 1) AS notnull_flags,
       pg_catalog.col_description(c.oid, a.attnum) AS comment
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'f') AND a.attnum > 0
   AND NOT a.attisdropped AND {_own("pg_catalog.pg_class", "c.oid")}
"""

# NOT NULL constraints (PostgreSQL 18 lists them) are compared as the columns' NOT NULL;
# constraint triggers as triggers.
# Foreign keys of tables in other schemas that reference the schema's tables are read
# too (they refuse deletes no migration knows of). The index behind a PRIMARY KEY,
# UNIQUE or EXCLUDE constraint is compared through the constraint (storage parameters,
# tablespace, clustering: pg_get_constraintdef prints none of them); a foreign key's
# internal triggers by their enabled state (a disabled one stops checking the key).
_CONSTRAINTS = """
SELECT n.nspname, c.relname, k.conname, k.contype::text AS contype,
       pg_catalog.pg_get_constraintdef(k.oid) AS definition,
       ic.relname AS index_name, coalesce(ic.reloptions, '{}') AS index_options,
       its.spcname AS index_tablespace, coalesce(x.indisclustered, false) AS clustered,
       ARRAY(SELECT t.tgrelid::pg_catalog.regclass::text || ' ' || tp.proname || ' ' ||
                    t.tgenabled::text
               FROM pg_catalog.pg_trigger t
               JOIN pg_catalog.pg_proc tp ON tp.oid = t.tgfoid
              WHERE t.tgconstraint = k.oid AND t.tgisinternal AND t.tgenabled <> 'O'
              ORDER BY 1) AS internal_triggers,
       pg_catalog.obj_description(k.oid, 'pg_constraint') AS comment
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class ic ON ic.oid = k.conindid AND k.contype IN ('p', 'u', 'x')
  LEFT JOIN pg_catalog.pg_index x ON x.indexrelid = ic.oid
  LEFT JOIN pg_catalog.pg_tablespace its ON its.oid = ic.reltablespace
 WHERE (n.nspname = $1 AND k.contype NOT IN ('n', 't'))
    OR (k.contype = 'f' AND n.nspname <> $1
        AND k.confrelid IN (SELECT r.oid FROM pg_catalog.pg_class r
                              JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
                             WHERE rn.nspname = $1))
"""

# Settings given to this database (ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE
# ... SET) that change whether or how the schema's rules apply: every new session starts
# with them (session_replication_role = replica switches every trigger and foreign key
# off; search_path changes what unqualified names mean; row_security switches policies).
# Operational settings a user gives a database (statement_timeout, timezone, work_mem...)
# are theirs to give and are not compared.
RULE_SETTINGS = ("session_replication_role", "search_path", "row_security")
_SETTINGS = f"""
SELECT r.rolname AS role, cfg
  FROM pg_catalog.pg_db_role_setting s
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
  CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
 WHERE s.setdatabase = (SELECT oid FROM pg_catalog.pg_database
                         WHERE datname = pg_catalog.current_database())
   AND lower(split_part(cfg, '=', 1)) IN ({", ".join(f"'{n}'" for n in RULE_SETTINGS)})
"""

# Event triggers are the database's, not a schema's: one can refuse every migration.
_EVENT_TRIGGERS = f"""
SELECT e.evtname, e.evtevent, e.evtfoid::pg_catalog.regproc::text AS function,
       e.evtenabled::text AS enabled, coalesce(e.evttags, '{{}}') AS tags,
       pg_catalog.obj_description(e.oid, 'pg_event_trigger') AS comment
  FROM pg_catalog.pg_event_trigger e
 WHERE {_own("pg_catalog.pg_event_trigger", "e.oid")}
"""

# Publications that publish any table of the schema (rows leave the database).
_PUBLICATIONS = """
SELECT p.pubname, p.puballtables,
       ARRAY(SELECT pr.prrelid::pg_catalog.regclass::text
               FROM pg_catalog.pg_publication_rel pr
               JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
              WHERE pr.prpubid = p.oid AND c.relnamespace = n.oid ORDER BY 1) AS tables,
       ARRAY(SELECT pr.prrelid::pg_catalog.regclass::text
                    || coalesce(' (' || (SELECT string_agg(pg_catalog.quote_ident(a.attname),
                                                           ', ' ORDER BY a.attnum)
                                           FROM pg_catalog.pg_attribute a
                                          WHERE a.attrelid = pr.prrelid
                                            AND a.attnum = ANY (pr.prattrs)) || ')', '')
                    || coalesce(' WHERE (' || pg_catalog.pg_get_expr(pr.prqual, pr.prrelid)
                                || ')', '')
               FROM pg_catalog.pg_publication_rel pr
               JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
              WHERE pr.prpubid = p.oid AND c.relnamespace = n.oid ORDER BY 1) AS specs,
       EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace pn
                WHERE pn.pnpubid = p.oid AND pn.pnnspid = n.oid) AS whole_schema
  FROM pg_catalog.pg_publication p, pg_catalog.pg_namespace n
 WHERE n.nspname = $1
"""

_INDEXES = """
SELECT t.relname AS table, i.relname, pg_catalog.pg_get_indexdef(i.oid) AS definition,
       x.indisvalid, x.indisready, x.indislive, x.indisclustered,
       pg_catalog.obj_description(i.oid, 'pg_class') AS comment
  FROM pg_catalog.pg_index x
  JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
  JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
 WHERE n.nspname = $1
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                    WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid
                      AND k.contype IN ('p', 'u', 'x'))
"""

_TRIGGERS = """
SELECT c.relname, t.tgname, pg_catalog.pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled::text AS enabled,
       pg_catalog.obj_description(t.oid, 'pg_trigger') AS comment
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND NOT t.tgisinternal
"""

_FUNCTIONS = f"""
SELECT p.proname, p.prokind::text AS prokind,
       pg_catalog.pg_get_function_identity_arguments(p.oid) AS identity_args,
       pg_catalog.pg_get_function_arguments(p.oid) AS arguments,
       pg_catalog.pg_get_function_result(p.oid) AS result,
       CASE WHEN p.prokind <> 'a' THEN pg_catalog.pg_get_functiondef(p.oid) END AS definition,
       pg_catalog.obj_description(p.oid, 'pg_proc') AS comment
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = $1 AND {_own("pg_catalog.pg_proc", "p.oid")}
"""

_POLICIES = """
SELECT c.relname, p.polname, p.polpermissive, p.polcmd::text AS cmd,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC'
                         ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r)) END
               FROM unnest(p.polroles) AS r ORDER BY 1) AS roles,
       pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual,
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS with_check,
       pg_catalog.obj_description(p.oid, 'pg_policy') AS comment
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1
"""

_RULES = """
SELECT c.relname, r.rulename, pg_catalog.pg_get_ruledef(r.oid) AS definition,
       r.ev_enabled::text AS enabled,
       pg_catalog.obj_description(r.oid, 'pg_rewrite') AS comment
  FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND r.rulename <> '_RETURN'
"""

_TYPES = f"""
SELECT t.typname, t.typtype::text AS typtype,
       CASE WHEN t.typtype = 'd'
            THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END AS base,
       t.typnotnull, t.typdefault,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid
              ORDER BY e.enumsortorder) AS labels,
       ARRAY(SELECT pg_catalog.quote_ident(k.conname) || ' ' ||
                    pg_catalog.pg_get_constraintdef(k.oid)
               FROM pg_catalog.pg_constraint k
              WHERE k.contypid = t.oid AND k.contype <> 'n' ORDER BY k.conname) AS checks,
       ARRAY(SELECT pg_catalog.quote_ident(a.attname) || ' ' ||
                    pg_catalog.format_type(a.atttypid, a.atttypmod)
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum) AS attributes,
       (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r
         WHERE r.rngtypid = t.oid) AS subtype,
       pg_catalog.obj_description(t.oid, 'pg_type') AS comment
  FROM pg_catalog.pg_type t
  JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = $1 AND t.typtype <> 'm'
   AND (t.typrelid = 0 OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)
   AND {_own("pg_catalog.pg_type", "t.oid")}
"""

#: Other catalogs whose objects live in a schema: (catalog, namespace column, definition).
_OTHER_CATALOGS = (
    ("pg_operator", "oprnamespace", "NULL"),
    ("pg_opclass", "opcnamespace", "NULL"),
    ("pg_opfamily", "opfnamespace", "NULL"),
    ("pg_collation", "collnamespace", "NULL"),
    ("pg_conversion", "connamespace", "NULL"),
    ("pg_ts_config", "cfgnamespace", "NULL"),
    ("pg_ts_dict", "dictnamespace", "NULL"),
    ("pg_ts_parser", "prsnamespace", "NULL"),
    ("pg_ts_template", "tmplnamespace", "NULL"),
    ("pg_statistic_ext", "stxnamespace", "pg_catalog.pg_get_statisticsobjdef(o.oid)"),
    ("pg_extension", "extnamespace", "o.extversion"),
)

_SCHEMA_ROW = """
SELECT pg_catalog.obj_description(n.oid, 'pg_namespace') AS comment
  FROM pg_catalog.pg_namespace n WHERE n.nspname = $1
"""


def _add(snap: Snapshot, item: Item) -> None:
    snap[(item.kind, item.name)] = item


async def snapshot(conn: asyncpg.Connection, schema: str = SCHEMA) -> Snapshot:
    """Everything the catalog holds for ``schema``. Changes nothing: it runs in a
    transaction (a savepoint inside the caller's) that is rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        # Every name outside pg_catalog printed schema-qualified.
        await conn.execute("SET LOCAL search_path = ''")
        return await _read(conn, schema)
    finally:
        await tx.rollback()


async def _read(conn: asyncpg.Connection, schema: str) -> Snapshot:
    snap: Snapshot = {}
    row = await conn.fetchrow(_SCHEMA_ROW, schema)
    if row is None:
        return snap
    _add(snap, Item("schema", schema, {"comment": row["comment"]}, {"name": schema}))

    for r in await conn.fetch(_RELATIONS, schema):
        name, relkind = r["relname"], r["relkind"]
        if relkind in ("r", "p", "f"):
            attrs: dict[str, Any] = {
                "kind": {"r": "table", "p": "partitioned table", "f": "foreign table"}[relkind],
                "persistence": {"p": "logged", "u": "unlogged", "t": "temporary"}.get(
                    r["persistence"], r["persistence"]
                ),
                "storage parameters": sorted(r["reloptions"]),
                "row level security": r["relrowsecurity"],
                "forced row level security": r["relforcerowsecurity"],
                "replica identity": r["replident"]
                + (f" {r['replident_index']}" if r["replident"] == "i" else ""),
                "inherits": list(r["parents"]),
                "inherited by (other schemas)": list(r["outside_children"]),
                "partition key": r["partkey"],
                "partition of": r["partbound"],
                "access method": r["amname"],
                "tablespace": r["spcname"],
                "comment": r["comment"],
            }
            _add(snap, Item("table", name, attrs, {"name": name, "relkind": relkind}))
        elif relkind in ("v", "m"):
            attrs = {
                "kind": "materialized view" if relkind == "m" else "view",
                "definition": r["viewdef"],
                "storage parameters": sorted(r["reloptions"]),
                "comment": r["comment"],
            }
            _add(snap, Item("view", name, attrs, {"name": name, "relkind": relkind}))
        elif relkind == "S" and not r["identity_sequence"]:
            attrs = {
                "type": r["seqtype"],
                "start": r["seqstart"],
                "increment": r["seqincrement"],
                "minvalue": r["seqmin"],
                "maxvalue": r["seqmax"],
                "cache": r["seqcache"],
                "cycle": r["seqcycle"],
                "owned by": r["owned_by"],
                "comment": r["comment"],
            }
            _add(snap, Item("sequence", name, attrs, {"name": name}))

    for r in await conn.fetch(_COLUMNS, schema):
        table, column = r["relname"], r["attname"]
        attrs = {
            "type": r["type"],
            "not null": r["attnotnull"],
            "not null constraint": r["notnull_flags"],
            "default": r["default"] if not r["generated"] else None,
            "identity": {"a": "ALWAYS", "d": "BY DEFAULT"}.get(r["identity"]),
            "identity sequence": r["identity_options"],
            "generated": r["default"] if r["generated"] else None,
            "collation": r["collation"],
            "storage": r["storage"],
            "compression": _COMPRESSION.get(r["compression"], r["compression"]),
            "statistics": r["stattarget"],
            "options": sorted(r["attoptions"]),
            "comment": r["comment"],
        }
        ref = {
            "table": table,
            "name": column,
            "not null name": r["notnull_name"],
            "type storage": r["typstorage"],
        }
        _add(snap, Item("column", f"{table}.{column}", attrs, ref))

    for r in await conn.fetch(_CONSTRAINTS, schema):
        table, name = r["relname"], r["conname"]
        attrs = {"definition": r["definition"], "comment": r["comment"]}
        ref = {"table": table, "name": name, "contype": r["contype"]}
        if r["index_name"] is not None:
            attrs["index storage parameters"] = sorted(r["index_options"])
            attrs["index tablespace"] = r["index_tablespace"]
            attrs["clustered"] = r["clustered"]
            ref["index"] = r["index_name"]
        if r["contype"] == "f":
            triggers = [t.rsplit(" ", 1) for t in r["internal_triggers"]]
            attrs["internal triggers not enabled"] = [
                f"{on}: {_TRIGGER_STATES[state]}" for on, state in triggers
            ]
        if r["nspname"] != schema:
            ref["schema"] = r["nspname"]
            name = f"{r['nspname']}.{table}.{name}"
        else:
            name = f"{table}.{name}"
        _add(snap, Item("constraint", name, attrs, ref))

    for r in await conn.fetch(_SETTINGS):
        setting, _, value = r["cfg"].partition("=")
        name = setting if r["role"] is None else f"{setting} (role {r['role']})"
        ref = {"setting": setting, "role": r["role"]}
        _add(snap, Item("setting", name, {"value": value}, ref))

    for r in await conn.fetch(_EVENT_TRIGGERS):
        attrs = {
            "event": r["evtevent"],
            "tags": sorted(r["tags"]),
            "function": r["function"],
            "enabled": _TRIGGER_STATES[r["enabled"]],
            "comment": r["comment"],
        }
        _add(snap, Item("event trigger", r["evtname"], attrs, {"name": r["evtname"]}))

    for r in await conn.fetch(_PUBLICATIONS, schema):
        if not (r["puballtables"] or r["tables"] or r["whole_schema"]):
            continue
        attrs = {
            "all tables": r["puballtables"],
            "all tables in schema": r["whole_schema"],
            "tables": list(r["specs"]),
        }
        ref = {"name": r["pubname"], "tables": dict(zip(r["specs"], r["tables"], strict=True))}
        _add(snap, Item("publication", r["pubname"], attrs, ref))

    for r in await conn.fetch(_INDEXES, schema):
        table, name = r["table"], r["relname"]
        attrs = {
            "definition": r["definition"],
            "valid": r["indisvalid"],
            "ready": r["indisready"],
            "live": r["indislive"],
            "clustered": r["indisclustered"],
            "comment": r["comment"],
        }
        _add(snap, Item("index", f"{table}.{name}", attrs, {"table": table, "name": name}))

    for r in await conn.fetch(_TRIGGERS, schema):
        table, name = r["relname"], r["tgname"]
        attrs = {
            "definition": r["definition"],
            "enabled": _TRIGGER_STATES[r["enabled"]],
            "comment": r["comment"],
        }
        _add(snap, Item("trigger", f"{table}.{name}", attrs, {"table": table, "name": name}))

    for r in await conn.fetch(_FUNCTIONS, schema):
        name = f"{r['proname']}({r['identity_args']})"
        attrs = {
            "kind": _PROKINDS.get(r["prokind"], r["prokind"]),
            "definition": r["definition"],
            "comment": r["comment"],
        }
        ref = {
            "name": r["proname"],
            "identity_args": r["identity_args"],
            "arguments": r["arguments"],
            "result": r["result"],
            "prokind": r["prokind"],
        }
        _add(snap, Item("function", name, attrs, ref))

    for r in await conn.fetch(_POLICIES, schema):
        table, name = r["relname"], r["polname"]
        attrs = {
            "as": "PERMISSIVE" if r["polpermissive"] else "RESTRICTIVE",
            "for": _POLICY_COMMANDS[r["cmd"]],
            "to": list(r["roles"]),
            "using": r["qual"],
            "with check": r["with_check"],
            "comment": r["comment"],
        }
        _add(snap, Item("policy", f"{table}.{name}", attrs, {"table": table, "name": name}))

    for r in await conn.fetch(_RULES, schema):
        table, name = r["relname"], r["rulename"]
        attrs = {
            "definition": r["definition"],
            "enabled": _TRIGGER_STATES[r["enabled"]],
            "comment": r["comment"],
        }
        _add(snap, Item("rule", f"{table}.{name}", attrs, {"table": table, "name": name}))

    for r in await conn.fetch(_TYPES, schema):
        typtype = r["typtype"]
        attrs = {
            "kind": _TYPE_KINDS.get(typtype, typtype),
            "base type": r["base"],
            "not null": r["typnotnull"],
            "default": r["typdefault"],
            "labels": list(r["labels"]),
            "checks": list(r["checks"]),
            "attributes": list(r["attributes"]),
            "subtype": r["subtype"],
            "comment": r["comment"],
        }
        _add(snap, Item("type", r["typname"], attrs, {"name": r["typname"], "typtype": typtype}))

    for catalog, namespace_column, definition in _OTHER_CATALOGS:
        for r in await conn.fetch(
            f"""SELECT (pg_catalog.pg_identify_object('pg_catalog.{catalog}'::pg_catalog.regclass,
                                                      o.oid, 0)).*,
                       {definition} AS definition
                  FROM pg_catalog.{catalog} o
                  JOIN pg_catalog.pg_namespace n ON n.oid = o.{namespace_column}
                 WHERE n.nspname = $1 AND {_own(f"pg_catalog.{catalog}", "o.oid")}""",
            schema,
        ):
            name = f"{r['type']} {r['identity']}"
            attrs = {"definition": r["definition"]}
            _add(snap, Item("object", name, attrs, {"type": r["type"], "identity": r["identity"]}))
    return snap


_COMPRESSION = {"p": "pglz", "l": "lz4"}
_TRIGGER_STATES = {"O": "ENABLED", "D": "DISABLED", "R": "ENABLED REPLICA", "A": "ENABLED ALWAYS"}
_PROKINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window function"}
_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
_TYPE_KINDS = {
    "b": "base",
    "c": "composite",
    "d": "domain",
    "e": "enum",
    "p": "pseudo",
    "r": "range",
}


# --------------------------------------------------------------------------- #
# Comparing two snapshots
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Difference:
    """One object that differs between an expected and an actual snapshot.

    ``expected`` / ``actual`` are the items (None where the object is absent);
    ``expected_label`` / ``actual_label`` name the two sides in the report.
    """

    kind: str
    name: str
    expected: Item | None
    actual: Item | None
    expected_label: str = "migrations"
    actual_label: str = "database"

    @property
    def changed(self) -> list[str]:
        """The names of the attributes that differ (empty when one side is absent)."""
        if self.expected is None or self.actual is None:
            return []
        keys = list(self.expected.attrs) + [
            k for k in self.actual.attrs if k not in self.expected.attrs
        ]
        return [k for k in keys if self.expected.attrs.get(k) != self.actual.attrs.get(k)]

    def __str__(self) -> str:
        head = f"[{self.kind}] {self.name}"
        if self.actual is None:
            return f"{head}: in the {self.expected_label}, missing in the {self.actual_label}"
        if self.expected is None:
            extra = _describe(self.actual)
            return f"{head}: in the {self.actual_label}, not in the {self.expected_label}{extra}"
        assert self.expected is not None and self.actual is not None
        lines = [f"{head}:"]
        for key in self.changed:
            old, new = self.expected.attrs.get(key), self.actual.attrs.get(key)
            if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
                lines.append(f"      {key} differs:")
                lines += [
                    f"        {line}"
                    for line in difflib.unified_diff(
                        old.splitlines(),
                        new.splitlines(),
                        self.expected_label,
                        self.actual_label,
                        n=1,
                        lineterm="",
                    )
                ]
            elif isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > 120:
                a, z = _around_difference(old, new)
                lines.append(f"      {key}:")
                lines.append(f"        in the {self.expected_label}: {a}")
                lines.append(f"        in the {self.actual_label}: {z}")
            else:
                lines.append(
                    f"      {key}: {_show(old)} in the {self.expected_label}, "
                    f"{_show(new)} in the {self.actual_label}"
                )
        return "\n".join(lines)


def _show(value: Any) -> str:
    return "none" if value is None else repr(value)


def _around_difference(old: str, new: str, context: int = 40) -> tuple[str, str]:
    """The part of two long strings where they differ, with some context either side."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    begin = max(0, start - context)

    def cut(text: str) -> str:
        stop = min(len(text), len(text) - end + context)
        return ("..." if begin else "") + text[begin:stop] + ("..." if stop < len(text) else "")

    return cut(old), cut(new)


def _describe(item: Item) -> str:
    definition = item.attrs.get("definition", item.attrs.get("value"))
    if isinstance(definition, str):
        first = definition.strip().splitlines()[0] if definition.strip() else ""
        return f" ({first[:160]})"
    return ""


def diff(
    expected: Snapshot,
    actual: Snapshot,
    expected_label: str = "migrations",
    actual_label: str = "database",
) -> list[Difference]:
    """Every object present on one side only, or present on both with any attribute
    different; in a stable order (by kind, then name)."""
    out = []
    for key in sorted(
        expected.keys() | actual.keys(), key=lambda k: (_KIND_ORDER.index(k[0]), k[1])
    ):
        a, b = expected.get(key), actual.get(key)
        if a is not None and b is not None and a.attrs == b.attrs:
            continue
        out.append(Difference(key[0], key[1], a, b, expected_label, actual_label))
    return out


_KIND_ORDER = (
    "schema",
    "table",
    "column",
    "constraint",
    "index",
    "trigger",
    "function",
    "view",
    "sequence",
    "policy",
    "rule",
    "type",
    "object",
    "setting",
    "event trigger",
    "publication",
)


# --------------------------------------------------------------------------- #
# The SQL that takes a database from one snapshot to another
# --------------------------------------------------------------------------- #


@dataclass
class Plan:
    """Statements taking a database from the ``source`` snapshot to the ``target``.

    ``manual`` lists what no statement is written for (tables, which Piccolo's
    migrations own; objects PostgreSQL cannot print a definition of), in words.
    """

    statements: list[str] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)


# Phases, in the order their statements run: what depends on others is dropped first and
# created last.
_PHASES = (
    "drop event triggers",  # first: one may refuse the DDL below
    "drop dependants",  # policies, rules, triggers, views
    "uninherit",  # before inherited columns are dropped
    "drop constraints",  # foreign keys first
    "drop keys",
    "drop indexes",
    "drop columns",
    "drop functions",
    "drop sequences",
    "drop types",
    "drop tables",
    "create types",
    "create sequences",
    "create functions",
    "alter tables",
    "alter columns",
    "inherit",  # after the columns a parent needs exist
    "own sequences",
    "create keys",
    "create constraints",
    "create indexes",
    "replica identity",  # after the index it names exists
    "create views",
    "create dependants",
    "comments",
    "settings",
    "create event triggers",  # last, with their comments
)


class _Builder:
    def __init__(self) -> None:
        self.phases: dict[str, list[str]] = {p: [] for p in _PHASES}
        self.manual: list[str] = []
        self.needs_no_body_check = False

    def add(self, phase: str, *statements: str) -> None:
        self.phases[phase].extend(statements)

    def result(self) -> Plan:
        statements = [s for p in _PHASES for s in self.phases[p]]
        if self.needs_no_body_check:
            # SQL-language bodies are checked at CREATE; they may name what comes later.
            statements.insert(0, "SET LOCAL check_function_bodies = off")
        return Plan(statements, self.manual)


def plan(source: Snapshot, target: Snapshot, schema: str = SCHEMA) -> Plan:
    """The statements that turn a database whose catalog is ``source`` into one whose
    catalog is ``target`` (e.g. source = the migrations, target = the code: the next
    migration's forwards; swapped: its backwards)."""
    b = _Builder()
    for difference in diff(source, target):
        _WRITERS[difference.kind](b, difference.expected, difference.actual, schema)
    return b.result()


def _table(schema: str, item: Item) -> str:
    return qualified(item.ref["table"], item.ref.get("schema", schema))


def _do(body: str) -> str:
    """A ``DO`` block running ``body`` (PL/pgSQL), dollar-quoted with a tag the body
    does not hold."""
    n = 0
    while f"$agent_app{n}$" in body:
        n += 1
    tag = f"$agent_app{n}$"
    return f"DO {tag} {body} {tag}"


def _format_text(sql: str) -> str:
    """``sql`` as literal text for ``format()``: its ``%`` doubled."""
    return sql.replace("%", "%%")


def _comment(b: _Builder, on: str, old: Item | None, new: Item) -> None:
    if (old.attrs.get("comment") if old else None) != new.attrs.get("comment"):
        b.add("comments", f"COMMENT ON {on} IS {literal(new.attrs.get('comment'))}")


def _w_schema(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if new is None or old is None:
        b.manual.append(f"schema {schema}: exists on one side only")
        return
    _comment(b, f"SCHEMA {ident(schema)}", old, new)


def _reloptions(options: Iterable[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in options)


def _option_name(name: str) -> str:
    return ".".join(ident(part) for part in name.split("."))


def _w_table(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if old is None or new is None:
        item = new or old
        assert item is not None
        if new is None:
            b.add("drop tables", f"DROP TABLE {qualified(item.ref['name'], schema)}")
        else:
            b.manual.append(
                f"table {item.name}: tables are created by Piccolo's migrations "
                "(`piccolo migrations new agent_app --auto`, then "
                "`piccolo migrations forwards agent_app`)"
            )
        return
    t = qualified(new.ref["name"], schema)
    a, z = old.attrs, new.attrs
    was, now = _reloptions(a["storage parameters"]), _reloptions(z["storage parameters"])
    if reset := sorted(was.keys() - now.keys()):
        b.add("alter tables", f"ALTER TABLE {t} RESET ({', '.join(map(_option_name, reset))})")
    if changed := sorted(k for k in now if was.get(k) != now[k]):
        options = ", ".join(f"{_option_name(k)} = {literal(now[k])}" for k in changed)
        b.add("alter tables", f"ALTER TABLE {t} SET ({options})")
    if a["row level security"] != z["row level security"]:
        verb = "ENABLE" if z["row level security"] else "DISABLE"
        b.add("alter tables", f"ALTER TABLE {t} {verb} ROW LEVEL SECURITY")
    if a["forced row level security"] != z["forced row level security"]:
        verb = "FORCE" if z["forced row level security"] else "NO FORCE"
        b.add("alter tables", f"ALTER TABLE {t} {verb} ROW LEVEL SECURITY")
    if a["persistence"] != z["persistence"]:
        b.add("alter tables", f"ALTER TABLE {t} SET {z['persistence'].upper()}")
    if a["replica identity"] != z["replica identity"]:
        mode = z["replica identity"]
        clause = {"d": "DEFAULT", "f": "FULL", "n": "NOTHING"}.get(mode)
        if clause is None:  # "i <index>"
            clause = f"USING INDEX {ident(mode.split(' ', 1)[1])}"
        b.add("replica identity", f"ALTER TABLE {t} REPLICA IDENTITY {clause}")
    # Names printed by PostgreSQL (regclass): schema-qualified and quoted as needed.
    for parent in a["inherits"]:
        if parent not in z["inherits"]:
            b.add("uninherit", f"ALTER TABLE {t} NO INHERIT {parent}")
    for parent in z["inherits"]:
        if parent not in a["inherits"]:
            b.add("inherit", f"ALTER TABLE {t} INHERIT {parent}")
    key = "inherited by (other schemas)"
    for child in a.get(key, []):
        if child not in z.get(key, []):
            if new.ref.get("relkind") == "p":
                b.add("uninherit", f"ALTER TABLE {t} DETACH PARTITION {child}")
            else:
                b.add("uninherit", f"ALTER TABLE {child} NO INHERIT {t}")
    for child in z.get(key, []):
        if child not in a.get(key, []):
            if new.ref.get("relkind") == "p":
                b.manual.append(f"table {new.name}: attach partition {child} by hand")
            else:
                b.add("inherit", f"ALTER TABLE {child} INHERIT {t}")
    for key in ("kind", "partition key", "partition of", "access method", "tablespace"):
        if a[key] != z[key]:
            b.manual.append(f"table {new.name}: {key} differs ({a[key]!r} -> {z[key]!r})")
    _comment(b, f"TABLE {t}", old, new)


def _column_definition(item: Item) -> str:
    z = item.attrs
    parts = [ident(item.ref["name"]), z["type"]]
    if z["collation"]:
        parts.append(f"COLLATE {z['collation']}")
    if z["generated"]:
        parts.append(f"GENERATED ALWAYS AS ({z['generated']}) STORED")
    if z["identity"]:
        parts.append(f"GENERATED {z['identity']} AS IDENTITY{_identity_options(item)}")
    if z["default"] is not None:
        parts.append(f"DEFAULT {z['default']}")
    if z["not null"]:
        parts.append("NOT NULL")
    return " ".join(parts)


def _identity_options(item: Item) -> str:
    options = item.attrs.get("identity sequence")
    return f" ({options})" if options else ""


_SEQUENCE_OPTION = re.compile(r"(INCREMENT BY|MINVALUE|MAXVALUE|START WITH|CACHE) (-?[0-9]+)")


def _identity_set(options: str) -> str:
    """``SET ...`` clauses of ALTER COLUMN for identity sequence ``options``."""
    clauses = [f"SET {k} {v}" for k, v in _SEQUENCE_OPTION.findall(options)]
    clauses.append("SET NO CYCLE" if options.endswith("NO CYCLE") else "SET CYCLE")
    return " ".join(clauses)


def _column_settings(b: _Builder, t: str, c: str, old: Item | None, new: Item) -> None:
    a = old.attrs if old else {}
    z = new.attrs
    was, now = _reloptions(a.get("options", [])), _reloptions(z.get("options", []))
    if reset := sorted(was.keys() - now.keys()):
        names = ", ".join(map(_option_name, reset))
        b.add("alter columns", f"ALTER TABLE {t} ALTER COLUMN {c} RESET ({names})")
    if changed := sorted(k for k in now if was.get(k) != now[k]):
        options = ", ".join(f"{_option_name(k)} = {literal(now[k])}" for k in changed)
        b.add("alter columns", f"ALTER TABLE {t} ALTER COLUMN {c} SET ({options})")
    for key, clause in (
        # The type's own storage by name: SET STORAGE DEFAULT is PostgreSQL 16+.
        ("storage", lambda v: f"SET STORAGE {_STORAGE[v or new.ref.get('type storage', 'x')]}"),
        ("compression", lambda v: f"SET COMPRESSION {v or 'default'}"),
        ("statistics", lambda v: f"SET STATISTICS {-1 if v is None else v}"),
    ):
        if a.get(key) != z[key] and (old is not None or z[key] is not None):
            b.add("alter columns", f"ALTER TABLE {t} ALTER COLUMN {c} {clause(z[key])}")
    _comment(b, f"COLUMN {t}.{c}", old, new)


_STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED", "default": "DEFAULT"}


def _w_column(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if new is None:
        assert old is not None
        b.add(
            "drop columns",
            f"ALTER TABLE {_table(schema, old)} DROP COLUMN {ident(old.ref['name'])}",
        )
        return
    t, c = _table(schema, new), ident(new.ref["name"])
    if old is not None and bool(old.attrs["generated"]) != bool(new.attrs["generated"]):
        # A stored column becoming generated (or back) would be a DROP + ADD: the stored
        # values would be lost. Never written; the author decides how to carry them.
        b.manual.append(
            f"column {new.name}: {'stored' if not old.attrs['generated'] else 'generated'}"
            f" -> {'generated' if new.attrs['generated'] else 'stored'} loses its values"
            " as DROP + ADD; write it by hand"
        )
        return
    if old is None or old.attrs["generated"] != new.attrs["generated"]:
        if old is not None:
            b.add("drop columns", f"ALTER TABLE {t} DROP COLUMN {c}")
        b.add("alter columns", f"ALTER TABLE {t} ADD COLUMN {_column_definition(new)}")
        _column_settings(b, t, c, None, new)
        return
    a, z = old.attrs, new.attrs
    alter = f"ALTER TABLE {t} ALTER COLUMN {c}"
    retype = a["type"] != z["type"] or a["collation"] != z["collation"]
    if a["identity"] and not z["identity"]:
        b.add("alter columns", f"{alter} DROP IDENTITY")
    if retype and a["default"] is not None:
        b.add("alter columns", f"{alter} DROP DEFAULT")
    if retype:
        collate = f" COLLATE {z['collation']}" if z["collation"] else ""
        b.add("alter columns", f"{alter} TYPE {z['type']}{collate} USING {c}::{z['type']}")
    if z["default"] != a["default"] or (retype and z["default"] is not None):
        if z["default"] is None:
            b.add("alter columns", f"{alter} DROP DEFAULT")
        else:
            b.add("alter columns", f"{alter} SET DEFAULT {z['default']}")
    if z["identity"] and not a["identity"]:
        b.add(
            "alter columns",
            f"{alter} ADD GENERATED {z['identity']} AS IDENTITY{_identity_options(new)}",
        )
        # A new identity starts at 1: continue after the ids already used.
        b.add(
            "alter columns",
            f"SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence("
            f"{literal(t)}, {literal(new.ref['name'])}), "
            f"coalesce((SELECT max({c}) FROM {t}), 0) + 1, false)",
        )
    elif z["identity"] and a["identity"] != z["identity"]:
        b.add("alter columns", f"{alter} SET GENERATED {z['identity']}")
    if (
        z["identity"]
        and a["identity"]
        and z.get("identity sequence")
        and a.get("identity sequence") != z["identity sequence"]
    ):
        b.add("alter columns", f"{alter} {_identity_set(z['identity sequence'])}")
    _not_null(b, t, c, old, new)
    _column_settings(b, t, c, old, new)


def _not_null(b: _Builder, t: str, c: str, old: Item, new: Item) -> None:
    """NOT NULL, and (PostgreSQL 18) whether its constraint is NOT VALID / NO INHERIT."""
    a, z = old.attrs, new.attrs
    flags_a, flags_z = a.get("not null constraint"), z.get("not null constraint")
    if (a["not null"], flags_a) == (z["not null"], flags_z):
        return
    alter = f"ALTER TABLE {t} ALTER COLUMN {c}"
    if not z["not null"]:
        b.add("alter columns", f"{alter} DROP NOT NULL")
    elif flags_z is None:
        if a["not null"] and "NO INHERIT" in (flags_a or ""):
            b.add("alter columns", f"{alter} DROP NOT NULL")
        b.add("alter columns", f"{alter} SET NOT NULL")  # validates a NOT VALID one
    else:
        if a["not null"]:
            b.add("alter columns", f"{alter} DROP NOT NULL")
        name = new.ref.get("not null name") or f"{new.ref['table']}_{new.ref['name']}_not_null"
        b.add(
            "alter columns", f"ALTER TABLE {t} ADD CONSTRAINT {ident(name)} NOT NULL {c} {flags_z}"
        )


def _w_constraint(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if old is not None and (new is None or old.attrs["definition"] != new.attrs["definition"]):
        phase = "drop constraints" if old.ref["contype"] == "f" else "drop keys"
        b.add(phase, f"ALTER TABLE {_table(schema, old)} DROP CONSTRAINT {ident(old.ref['name'])}")
        old = None
    if new is not None:
        t, c = _table(schema, new), ident(new.ref["name"])
        if old is None:
            phase = "create constraints" if new.ref["contype"] == "f" else "create keys"
            b.add(phase, f"ALTER TABLE {t} ADD CONSTRAINT {c} {new.attrs['definition']}")
        if "index storage parameters" in new.attrs:
            _constraint_index(b, old, new, schema)
        if "internal triggers not enabled" in new.attrs:
            _internal_triggers(b, old, new, schema)
        _comment(b, f"CONSTRAINT {c} ON {t}", old, new)


def _constraint_index(b: _Builder, old: Item | None, new: Item, schema: str) -> None:
    """The storage parameters, tablespace and clustering of the index behind a key."""
    a = old.attrs if old else {}
    z = new.attrs
    # ADD CONSTRAINT names the index after the constraint.
    index_name = old.ref.get("index", new.ref["name"]) if old else new.ref["name"]
    i = qualified(index_name, new.ref.get("schema", schema))
    was = _reloptions(a.get("index storage parameters", []))
    now = _reloptions(z["index storage parameters"])
    if reset := sorted(was.keys() - now.keys()):
        b.add("create indexes", f"ALTER INDEX {i} RESET ({', '.join(map(_option_name, reset))})")
    if changed := sorted(k for k in now if was.get(k) != now[k]):
        options = ", ".join(f"{_option_name(k)} = {literal(now[k])}" for k in changed)
        b.add("create indexes", f"ALTER INDEX {i} SET ({options})")
    if a.get("index tablespace") != z["index tablespace"]:
        tablespace = ident(z["index tablespace"] or "pg_default")
        b.add("create indexes", f"ALTER INDEX {i} SET TABLESPACE {tablespace}")
    if a.get("clustered", False) != z["clustered"]:
        t = _table(schema, new)
        if z["clustered"]:
            b.add("create indexes", f"ALTER TABLE {t} CLUSTER ON {ident(index_name)}")
        else:
            b.add("create indexes", f"ALTER TABLE {t} SET WITHOUT CLUSTER")


def _trigger_states(item: Item | None) -> dict[tuple[str, str], str]:
    out = {}
    for entry in item.attrs.get("internal triggers not enabled", []) if item else []:
        on, state = entry.rsplit(": ", 1)
        relation, function = on.rsplit(" ", 1)
        out[(relation, function)] = state
    return out


def _internal_triggers(b: _Builder, old: Item | None, new: Item, schema: str) -> None:
    """Enable / disable a foreign key's internal triggers (their names hold OIDs, so
    they are found by table, function and constraint where the SQL runs)."""
    was, now = _trigger_states(old), _trigger_states(new)
    t = _table(schema, new)
    for relation, function in sorted(was.keys() | now.keys()):
        state = now.get((relation, function), "ENABLED")
        if was.get((relation, function), "ENABLED") == state:
            continue
        verb = {"ENABLED": "ENABLE", "DISABLED": "DISABLE"}.get(
            state, state.replace("ENABLED", "ENABLE")
        )
        command = _format_text(f"ALTER TABLE {relation} {verb} TRIGGER ") + "%I"
        b.add(
            "create dependants",
            _do(
                "DECLARE r record; BEGIN FOR r IN SELECT t.tgname FROM pg_catalog.pg_trigger t "
                "JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid WHERE t.tgisinternal "
                f"AND t.tgrelid = {literal(relation)}::pg_catalog.regclass "
                f"AND p.proname = {literal(function)} AND t.tgconstraint = "
                "(SELECT k.oid FROM pg_catalog.pg_constraint k WHERE k.conrelid = "
                f"{literal(t)}::pg_catalog.regclass AND k.conname = {literal(new.ref['name'])}) "
                f"LOOP EXECUTE pg_catalog.format({literal(command)}, r.tgname); END LOOP; END"
            ),
        )


def _w_index(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    rebuild = old is not None and (
        new is None
        or any(old.attrs[k] != new.attrs[k] for k in ("definition", "valid", "ready", "live"))
    )
    if rebuild:
        assert old is not None
        b.add("drop indexes", f"DROP INDEX {qualified(old.ref['name'], schema)}")
        old = None
    if new is None:
        return
    t, i = _table(schema, new), qualified(new.ref["name"], schema)
    if old is None:
        b.add("create indexes", new.attrs["definition"])
    if (old.attrs["clustered"] if old else False) != new.attrs["clustered"]:
        if new.attrs["clustered"]:
            b.add("create indexes", f"ALTER TABLE {t} CLUSTER ON {ident(new.ref['name'])}")
        else:
            b.add("create indexes", f"ALTER TABLE {t} SET WITHOUT CLUSTER")
    _comment(b, f"INDEX {i}", old, new)


def _enable(t: str, what: str, name: str, state: str) -> str:
    verb = {"ENABLED": "ENABLE", "DISABLED": "DISABLE"}.get(
        state, state.replace("ENABLED", "ENABLE")
    )
    return f"ALTER TABLE {t} {verb} {what} {ident(name)}"


def _w_trigger(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if old is not None and (new is None or old.attrs["definition"] != new.attrs["definition"]):
        b.add("drop dependants", f"DROP TRIGGER {ident(old.ref['name'])} ON {_table(schema, old)}")
        old = None
    if new is None:
        return
    t = _table(schema, new)
    if old is None:
        b.add("create dependants", new.attrs["definition"])
    if (old.attrs["enabled"] if old else "ENABLED") != new.attrs["enabled"]:
        b.add("create dependants", _enable(t, "TRIGGER", new.ref["name"], new.attrs["enabled"]))
    _comment(b, f"TRIGGER {ident(new.ref['name'])} ON {t}", old, new)


def _function_signature(item: Item, schema: str) -> str:
    return f"{qualified(item.ref['name'], schema)}({item.ref['identity_args']})"


def _w_function(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    kind = (new or old).attrs["kind"]  # type: ignore[union-attr]
    keyword = {"procedure": "PROCEDURE", "aggregate": "AGGREGATE"}.get(kind, "FUNCTION")
    replace_in_place = (
        old is not None
        and new is not None
        and old.ref["result"] == new.ref["result"]
        and old.ref["arguments"] == new.ref["arguments"]
        and old.attrs["kind"] == new.attrs["kind"]
    )
    if old is not None and (new is None or not replace_in_place):
        b.add("drop functions", f"DROP {keyword} {_function_signature(old, schema)}")
        old = None
    if new is None:
        return
    if old is None or old.attrs["definition"] != new.attrs["definition"]:
        if new.attrs["definition"] is None:
            b.manual.append(f"{kind} {new.name}: write its CREATE by hand")
        else:
            b.add("create functions", new.attrs["definition"].rstrip().rstrip(";"))
            b.needs_no_body_check = True
    _comment(b, f"{keyword} {_function_signature(new, schema)}", old, new)


def _view_shape(item: Item) -> tuple[Any, ...]:
    return tuple(item.attrs[k] for k in ("kind", "definition", "storage parameters"))


def _w_view(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if old is not None and (new is None or _view_shape(old) != _view_shape(new)):
        keyword = "MATERIALIZED VIEW" if old.attrs["kind"] == "materialized view" else "VIEW"
        b.add("drop dependants", f"DROP {keyword} {qualified(old.ref['name'], schema)}")
        old = None
    if new is None:
        return
    v = qualified(new.ref["name"], schema)
    keyword = "MATERIALIZED VIEW" if new.attrs["kind"] == "materialized view" else "VIEW"
    if old is None:
        options = new.attrs["storage parameters"]
        with_ = ""
        if options:
            opts = _reloptions(options)
            with_ = (
                " WITH ("
                + ", ".join(f"{_option_name(k)} = {literal(x)}" for k, x in opts.items())
                + ")"
            )
        body = new.attrs["definition"].strip().rstrip(";")
        tail = " WITH NO DATA" if keyword == "MATERIALIZED VIEW" else ""
        b.add("create views", f"CREATE {keyword} {v}{with_} AS {body}{tail}")
    _comment(b, f"{keyword} {v}", old, new)


def _w_sequence(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if new is None:
        assert old is not None
        b.add("drop sequences", f"DROP SEQUENCE {qualified(old.ref['name'], schema)}")
        return
    s, z = qualified(new.ref["name"], schema), new.attrs
    options = (
        f"AS {z['type']} INCREMENT BY {z['increment']} MINVALUE {z['minvalue']} "
        f"MAXVALUE {z['maxvalue']} START WITH {z['start']} CACHE {z['cache']} "
        f"{'CYCLE' if z['cycle'] else 'NO CYCLE'}"
    )
    if old is None:
        b.add("create sequences", f"CREATE SEQUENCE {s} {options}")
    elif any(
        old.attrs[k] != z[k]
        for k in ("type", "increment", "minvalue", "maxvalue", "start", "cache", "cycle")
    ):
        b.add("create sequences", f"ALTER SEQUENCE {s} {options}")
    if (old.attrs["owned by"] if old else None) != z["owned by"]:
        owner = "NONE"
        if z["owned by"]:
            table, column = z["owned by"].split(".", 1)
            owner = f"{qualified(table, schema)}.{ident(column)}"
        b.add("own sequences", f"ALTER SEQUENCE {s} OWNED BY {owner}")
    _comment(b, f"SEQUENCE {s}", old, new)


def _w_policy(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if old is not None and (
        new is None or {**old.attrs, "comment": None} != {**new.attrs, "comment": None}
    ):
        b.add("drop dependants", f"DROP POLICY {ident(old.ref['name'])} ON {_table(schema, old)}")
        old = None
    if new is None:
        return
    t, p, z = _table(schema, new), ident(new.ref["name"]), new.attrs
    if old is None:
        sql = f"CREATE POLICY {p} ON {t} AS {z['as']} FOR {z['for']} TO {', '.join(z['to'])}"
        if z["using"] is not None:
            sql += f" USING ({z['using']})"
        if z["with check"] is not None:
            sql += f" WITH CHECK ({z['with check']})"
        b.add("create dependants", sql)
    _comment(b, f"POLICY {p} ON {t}", old, new)


def _w_rule(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if old is not None and (new is None or old.attrs["definition"] != new.attrs["definition"]):
        b.add("drop dependants", f"DROP RULE {ident(old.ref['name'])} ON {_table(schema, old)}")
        old = None
    if new is None:
        return
    t = _table(schema, new)
    if old is None:
        b.add("create dependants", new.attrs["definition"].strip().rstrip(";"))
    if (old.attrs["enabled"] if old else "ENABLED") != new.attrs["enabled"]:
        b.add("create dependants", _enable(t, "RULE", new.ref["name"], new.attrs["enabled"]))
    _comment(b, f"RULE {ident(new.ref['name'])} ON {t}", old, new)


def _w_type(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    def keyword(item: Item) -> str:
        return "DOMAIN" if item.ref["typtype"] == "d" else "TYPE"

    if old is not None and (
        new is None or {**old.attrs, "comment": None} != {**new.attrs, "comment": None}
    ):
        b.add("drop types", f"DROP {keyword(old)} {qualified(old.ref['name'], schema)}")
        old = None
    if new is None:
        return
    t, z = qualified(new.ref["name"], schema), new.attrs
    if old is None:
        typtype = new.ref["typtype"]
        if typtype == "e":
            b.add(
                "create types", f"CREATE TYPE {t} AS ENUM ({', '.join(map(literal, z['labels']))})"
            )
        elif typtype == "c":
            b.add("create types", f"CREATE TYPE {t} AS ({', '.join(z['attributes'])})")
        elif typtype == "r":
            b.add("create types", f"CREATE TYPE {t} AS RANGE (SUBTYPE = {z['subtype']})")
        elif typtype == "d":
            sql = f"CREATE DOMAIN {t} AS {z['base type']}"
            if z["default"] is not None:
                sql += f" DEFAULT {z['default']}"
            if z["not null"]:
                sql += " NOT NULL"
            sql += "".join(f" CONSTRAINT {check}" for check in z["checks"])
            b.add("create types", sql)
        else:
            b.manual.append(f"type {new.name} ({z['kind']}): write its CREATE by hand")
            return
    _comment(b, f"{keyword(new)} {t}", old, new)


def _w_object(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    if old is not None:
        keyword = old.ref["type"].upper().replace("STATISTICS OBJECT", "STATISTICS")
        b.add("drop types", f"DROP {keyword} {old.ref['identity']}")
    if new is not None:
        definition = new.attrs["definition"]
        if new.ref["type"] == "statistics object" and definition:
            b.add("create dependants", definition)
        elif new.ref["type"] == "extension":
            b.add(
                "create types",
                f"CREATE EXTENSION {ident(new.ref['identity'])} SCHEMA {ident(schema)}",
            )
        else:
            b.manual.append(f"{new.name}: write its CREATE by hand")


def _w_setting(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    item = new or old
    assert item is not None
    role, setting = item.ref["role"], _option_name(item.ref["setting"])
    target = "ALTER DATABASE %I"
    if role is not None:
        target = _format_text(f"ALTER ROLE {ident(role)} IN DATABASE ") + "%I"
    if new is None:
        action = f"RESET {setting}"
    else:
        action = f"SET {setting} TO {literal(new.attrs['value'])}"
    command = f"{target} {_format_text(action)}"
    b.add(
        "settings",
        _do(
            f"BEGIN EXECUTE pg_catalog.format({literal(command)}, "
            "pg_catalog.current_database()); END"
        ),
    )


def _w_event_trigger(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    def shape(item: Item) -> tuple[Any, ...]:
        return tuple(item.attrs[k] for k in ("event", "tags", "function"))

    if old is not None and (new is None or shape(old) != shape(new)):
        b.add("drop event triggers", f"DROP EVENT TRIGGER {ident(old.ref['name'])}")
        old = None
    if new is None:
        return
    e, z = ident(new.ref["name"]), new.attrs
    if old is None:
        tags = ""
        if z["tags"]:
            tags = f" WHEN TAG IN ({', '.join(map(literal, z['tags']))})"
        b.add(
            "create event triggers",
            f"CREATE EVENT TRIGGER {e} ON {ident(z['event'])}{tags} "
            f"EXECUTE FUNCTION {z['function']}()",  # printed by PostgreSQL (regproc)
        )
    if (old.attrs["enabled"] if old else "ENABLED") != z["enabled"]:
        verb = {"ENABLED": "ENABLE", "DISABLED": "DISABLE"}.get(
            z["enabled"], z["enabled"].replace("ENABLED", "ENABLE")
        )
        b.add("create event triggers", f"ALTER EVENT TRIGGER {e} {verb}")
    if (old.attrs["comment"] if old else None) != z["comment"]:
        b.add("create event triggers", f"COMMENT ON EVENT TRIGGER {e} IS {literal(z['comment'])}")


def _w_publication(b: _Builder, old: Item | None, new: Item | None, schema: str) -> None:
    item = new or old
    assert item is not None
    p = ident(item.ref["name"])
    none: Mapping[str, Any] = {"all tables": False, "all tables in schema": False, "tables": []}
    a = old.attrs if old else none
    z = new.attrs if new else none
    for spec in a["tables"]:
        if spec not in z["tables"]:
            assert old is not None
            b.add("drop dependants", f"ALTER PUBLICATION {p} DROP TABLE {old.ref['tables'][spec]}")
    for spec in z["tables"]:
        if spec not in a["tables"]:
            b.add("create dependants", f"ALTER PUBLICATION {p} ADD TABLE {spec}")
    if a["all tables in schema"] != z["all tables in schema"]:
        verb = "ADD" if z["all tables in schema"] else "DROP"
        phase = "create dependants" if verb == "ADD" else "drop dependants"
        b.add(phase, f"ALTER PUBLICATION {p} {verb} TABLES IN SCHEMA {ident(schema)}")
    if a["all tables"] != z["all tables"]:
        b.manual.append(
            f"publication {item.name}: FOR ALL TABLES "
            f"{'added' if z['all tables'] else 'removed'} (recreate the publication by hand)"
        )


_WRITERS = {
    "schema": _w_schema,
    "table": _w_table,
    "column": _w_column,
    "constraint": _w_constraint,
    "index": _w_index,
    "trigger": _w_trigger,
    "function": _w_function,
    "view": _w_view,
    "sequence": _w_sequence,
    "policy": _w_policy,
    "rule": _w_rule,
    "type": _w_type,
    "object": _w_object,
    "setting": _w_setting,
    "event trigger": _w_event_trigger,
    "publication": _w_publication,
}


# --------------------------------------------------------------------------- #
# Definitions as PostgreSQL prints them after a round trip
# --------------------------------------------------------------------------- #

_PROBE = "agent_app_schema_check_probe"


async def canonicalise(
    snap: Snapshot, sandbox: asyncpg.Connection, cache: dict[tuple[str, str], str] | None = None
) -> Snapshot:
    """``snap`` with each CHECK constraint's, index's and trigger's definition replaced
    by what PostgreSQL prints once that printed definition is run again.

    PostgreSQL does not always print what it parses back to the same text (``status IN
    ('a', 'b')`` on a varchar prints as ``= ANY ((ARRAY[...])::text[])``, which prints
    as ``= ANY (ARRAY[(...)::text, ...])`` once re-run): a database fixed with printed
    SQL must not read as different. The round trip runs on ``sandbox`` (a scratch
    database with the same tables) inside a transaction that is rolled back."""
    cache = {} if cache is None else cache
    out: Snapshot = {}
    tx = sandbox.transaction()
    await tx.start()
    try:
        await sandbox.execute("SET LOCAL search_path = ''")
        for key, item in snap.items():
            definition = item.attrs.get("definition")
            probe = _probe_sql(item)
            if probe is None or not isinstance(definition, str):
                out[key] = item
                continue
            ck = (item.kind, definition)
            if ck not in cache:
                cache[ck] = await _round_trip(sandbox, item, definition, probe)
            out[key] = Item(item.kind, item.name, {**item.attrs, "definition": cache[ck]}, item.ref)
    finally:
        await tx.rollback()
    return out


def _probe_sql(item: Item) -> tuple[str, str] | None:
    """(SQL creating a probe copy of ``item`` on the sandbox, query reading it back)."""
    schema_table = qualified(item.ref.get("table", ""))
    if item.kind == "constraint" and item.ref["contype"] == "c":
        definition = item.attrs["definition"]
        body = definition.removesuffix(" NOT VALID")
        return (
            f"ALTER TABLE {schema_table} ADD CONSTRAINT {ident(_PROBE)} {body} NOT VALID",
            "SELECT pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
            f"WHERE conname = {literal(_PROBE)}",
        )
    if item.kind in ("index", "trigger"):
        return ("", "")
    return None


async def _round_trip(
    sandbox: asyncpg.Connection, item: Item, definition: str, probe: tuple[str, str]
) -> str:
    quoted = await sandbox.fetchval("SELECT pg_catalog.quote_ident($1)", item.ref["name"])
    try:
        async with sandbox.transaction():
            if item.kind == "constraint":
                await sandbox.execute(probe[0])
                again: str = await sandbox.fetchval(probe[1])
                if not definition.endswith(" NOT VALID"):
                    again = again.removesuffix(" NOT VALID")
            else:
                head = definition.split(f" {quoted} ", 1)
                if len(head) != 2:
                    return definition
                await sandbox.execute(f"{head[0]} {ident(_PROBE)} {head[1]}")
                if item.kind == "index":
                    again = await sandbox.fetchval(
                        "SELECT pg_catalog.pg_get_indexdef(c.oid) FROM pg_catalog.pg_class c "
                        "WHERE c.relname = $1 AND c.relnamespace = $2::regnamespace",
                        _PROBE,
                        SCHEMA,
                    )
                else:
                    again = await sandbox.fetchval(
                        "SELECT pg_catalog.pg_get_triggerdef(oid) FROM pg_catalog.pg_trigger "
                        "WHERE tgname = $1",
                        _PROBE,
                    )
                again = again.replace(f" {_PROBE} ", f" {quoted} ", 1)
            raise _Undo(again)
    except _Undo as done:
        return done.value
    except asyncpg.PostgresError:
        return definition  # not reproducible here (its table is not in the sandbox)


class _Undo(Exception):
    def __init__(self, value: str) -> None:
        self.value = value
