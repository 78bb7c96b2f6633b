#!/usr/bin/python3
"""Validate aidp lineage records against the OpenLineage 2-0-2 schemas in
tests/data/openlineage (RunEvent, and the standard `parent` facet against
ParentRunFacet). Usable as a module (validate_event) or as a command:
    check_openlineage.py LINEAGE.jsonl     -> exit 0 when every line is valid
"""
import json
import os
import sys

import jsonschema

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openlineage")


def _load(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


CORE = _load("OpenLineage.json")
PARENT = _load("facets/ParentRunFacet.json")
STORE = {CORE["$id"]: CORE, PARENT["$id"]: PARENT}


def _validator(schema, pointer):
    sub = {"$ref": schema["$id"] + "#" + pointer}
    cls = jsonschema.Draft202012Validator
    try:  # jsonschema >= 4.18
        from referencing import Registry, Resource

        reg = Registry().with_resources(
            (uri, Resource.from_contents(doc)) for uri, doc in STORE.items())
        return cls(sub, registry=reg, format_checker=cls.FORMAT_CHECKER)
    except ImportError:  # Debian 12's jsonschema 4.10
        resolver = jsonschema.RefResolver.from_schema(schema, store=STORE)
        return cls(sub, resolver=resolver, format_checker=cls.FORMAT_CHECKER)


RUN_EVENT = _validator(CORE, "/$defs/RunEvent")
PARENT_FACET = _validator(PARENT, "/$defs/ParentRunFacet")


def validate_event(ev):
    # The record's chain members (aidp_seq, aidp_prev, aidp_hmac) are not part of
    # the event; `aidp lineage export` drops them the same way.
    ev = {k: v for k, v in ev.items() if not k.startswith("aidp_")}
    RUN_EVENT.validate(ev)
    parent = ev.get("run", {}).get("facets", {}).get("parent")
    if parent is not None:
        PARENT_FACET.validate(parent)


if __name__ == "__main__":
    n = 0
    for line in open(sys.argv[1]):
        validate_event(json.loads(line))
        n += 1
    print("%d valid OpenLineage 2-0-2 RunEvents" % n)
