"""Envoy-JSON documents straight to protobuf wire bytes (the pure-Python twin of
`fastmesh_ext.wire`).

The translators speak Envoy's JSON (what `envoy -c` reads and `json_format.ParseDict`
takes); parsing that into upb messages and serialising them again was most of a 10k-service
build. This encoder walks the document once against a per-message plan made from the
descriptors and writes the wire format directly: fields in number order and map entries by
key, as a deterministic serialisation does, so equal documents give equal bytes (and
digests). It takes the subset of proto3 JSON the translators emit: scalars, enums by name or
number, nested and repeated messages, maps, and the well-known types Any, Duration, Struct,
Value, ListValue, Empty and the wrappers. Anything else is an `EncodeError` naming the
field, like `ParseDict`'s `ParseError` (a translator bug, never user input).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor

__all__ = ["EncodeError", "Plan", "encode", "plan_for", "plan_for_type_url", "varint"]

#: How a field's value is written (one per proto type, plus the well-known types whose
#: JSON form is not an object of their fields).
(
    K_MESSAGE,
    K_STRING,
    K_BYTES,
    K_BOOL,
    K_VARINT,
    K_ZIGZAG,
    K_ENUM,
    K_DOUBLE,
    K_FLOAT,
    K_FIXED32,
    K_FIXED64,
    K_SFIXED32,
    K_SFIXED64,
    K_DURATION,
    K_WRAPPER,
    K_ANY,
    K_STRUCT,
    K_VALUE,
    K_LIST_VALUE,
) = range(19)

_T = FieldDescriptor
_SCALAR_KIND = {
    _T.TYPE_STRING: K_STRING,
    _T.TYPE_BYTES: K_BYTES,
    _T.TYPE_BOOL: K_BOOL,
    _T.TYPE_INT32: K_VARINT,
    _T.TYPE_INT64: K_VARINT,
    _T.TYPE_UINT32: K_VARINT,
    _T.TYPE_UINT64: K_VARINT,
    _T.TYPE_SINT32: K_ZIGZAG,
    _T.TYPE_SINT64: K_ZIGZAG,
    _T.TYPE_ENUM: K_ENUM,
    _T.TYPE_DOUBLE: K_DOUBLE,
    _T.TYPE_FLOAT: K_FLOAT,
    _T.TYPE_FIXED32: K_FIXED32,
    _T.TYPE_FIXED64: K_FIXED64,
    _T.TYPE_SFIXED32: K_SFIXED32,
    _T.TYPE_SFIXED64: K_SFIXED64,
}
_WIRE_TYPE = {
    K_VARINT: 0,
    K_ZIGZAG: 0,
    K_ENUM: 0,
    K_BOOL: 0,
    K_DOUBLE: 1,
    K_FIXED64: 1,
    K_SFIXED64: 1,
    K_FLOAT: 5,
    K_FIXED32: 5,
    K_SFIXED32: 5,
}
_SPECIAL = {
    "google.protobuf.Duration": K_DURATION,
    "google.protobuf.Any": K_ANY,
    "google.protobuf.Struct": K_STRUCT,
    "google.protobuf.Value": K_VALUE,
    "google.protobuf.ListValue": K_LIST_VALUE,
    **{
        f"google.protobuf.{w}Value": K_WRAPPER
        for w in (
            "Double",
            "Float",
            "Int64",
            "UInt64",
            "Int32",
            "UInt32",
            "Bool",
            "String",
            "Bytes",
        )
    },
}
_STRUCTS = {
    K_DOUBLE: struct.Struct("<d"),
    K_FLOAT: struct.Struct("<f"),
    K_FIXED32: struct.Struct("<I"),
    K_FIXED64: struct.Struct("<Q"),
    K_SFIXED32: struct.Struct("<i"),
    K_SFIXED64: struct.Struct("<q"),
}
_PREFIX = "type.googleapis.com/"


class EncodeError(ValueError):
    """A document that does not fit its message type: names the field path."""


@dataclass(slots=True)
class Field:
    """How one field of a message is written."""

    name: str
    number: int
    #: The field's key bytes (number and wire type); packed repeated scalars use type 2.
    tag: bytes
    kind: int
    repeated: bool
    #: Written even when it holds the default value (messages, oneof members, optional).
    presence: bool
    #: The message plan (messages, map entries, wrappers' inner field).
    plan: Plan | None = None
    #: Enum value names -> numbers.
    enum: dict[str, int] | None = None
    #: Map entries: the key field and the value field.
    map_kv: tuple[Field, Field] | None = None


@dataclass(slots=True)
class Plan:
    """A message type's fields by proto name and JSON name."""

    full_name: str
    fields: dict[str, Field]
    #: For a special well-known type: its kind (else K_MESSAGE).
    kind: int = K_MESSAGE


_PLANS: dict[str, Plan] = {}


def varint(value: int) -> bytes:
    """The base-128 varint of `value` (negative: its 64-bit two's complement, 10 bytes)."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]


def plan_for(descriptor: Descriptor) -> Plan:
    """The (cached) plan of a message type."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is None:
        plan = Plan(descriptor.full_name, {}, _SPECIAL.get(descriptor.full_name, K_MESSAGE))
        _PLANS[descriptor.full_name] = plan  # before the fields: types may recurse
        for fd in descriptor.fields:
            f = _field(fd)
            plan.fields[fd.name] = f
            plan.fields[fd.json_name] = f
    return plan


def plan_for_type_url(type_url: str) -> Plan:
    """The plan of `type.googleapis.com/<full name>`, from the default descriptor pool."""
    name = type_url.rsplit("/", 1)[-1]
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        raise EncodeError(f"unknown type {type_url!r}") from None
    return plan_for(descriptor)


def _field(fd: FieldDescriptor) -> Field:
    repeated = fd.is_repeated
    if fd.type in (_T.TYPE_MESSAGE, _T.TYPE_GROUP):
        message = fd.message_type
        assert message is not None
        sub = plan_for(message)
        tag = varint(fd.number << 3 | 2)
        if message.GetOptions().map_entry:
            entry = message.fields_by_name
            kv = (_field(entry["key"]), _field(entry["value"]))
            return Field(fd.name, fd.number, tag, K_MESSAGE, False, True, sub, map_kv=kv)
        return Field(fd.name, fd.number, tag, K_MESSAGE, repeated, True, sub)
    kind = _SCALAR_KIND[fd.type]
    wire = _WIRE_TYPE.get(kind, 2)
    if repeated and fd.is_packed:
        wire = 2
    enum = None
    if kind == K_ENUM:
        assert fd.enum_type is not None
        enum = {v.name: v.number for v in fd.enum_type.values}
    return Field(
        fd.name,
        fd.number,
        varint(fd.number << 3 | wire),
        kind,
        repeated,
        fd.has_presence,
        None,
        enum,
    )


def encode(plan: Plan, doc: Any, memo: dict[int, bytes] | None = None) -> bytes:
    """`doc` (Envoy JSON for `plan`'s message type) as deterministic wire bytes.

    `memo` (id of a document -> its bytes, for one build whose documents all stay alive)
    encodes a document shared by several repeated fields once: the virtual hosts that every
    route config of a 10k-service mesh repeats."""
    kind = plan.kind
    if kind != K_MESSAGE:
        return _special(plan, kind, doc)
    if not isinstance(doc, dict):
        raise EncodeError(f"{plan.full_name}: expected an object, got {type(doc).__name__}")
    fields = plan.fields
    out: list[tuple[int, bytes]] = []
    for key, value in doc.items():
        f = fields.get(key)
        if f is None:
            raise EncodeError(f"{plan.full_name}: no field named {key!r}")
        if value is None:
            continue
        try:
            chunk = _field_bytes(f, value, memo)
        except EncodeError as exc:
            raise EncodeError(f"{key}.{exc}" if str(exc)[:1] != "[" else f"{key}{exc}") from None
        if chunk:
            out.append((f.number, chunk))
    if len(out) > 1:
        out.sort()
    return b"".join([chunk for _, chunk in out])


def _field_bytes(f: Field, value: Any, memo: dict[int, bytes] | None = None) -> bytes:
    if f.map_kv is not None:
        if not isinstance(value, dict):
            raise EncodeError(f"{f.name}: expected a map")
        key_f, value_f = f.map_kv
        parts = []
        for k in sorted(value):
            entry = _one(key_f, _map_key(key_f, k)) + _one(value_f, value[k])
            parts.append(f.tag + varint(len(entry)) + entry)
        return b"".join(parts)
    if f.repeated:
        if not isinstance(value, list):
            raise EncodeError(f"{f.name}: expected a list")
        if f.kind in _WIRE_TYPE and f.tag[0] & 7 == 2:  # packed (proto3's default)
            body = b"".join([_scalar(f, v) for v in value])
            return f.tag + varint(len(body)) + body if body else b""
        parts = []
        for i, v in enumerate(value):
            try:
                if memo is not None and f.plan is not None:
                    chunk = memo.get(id(v))
                    if chunk is None:
                        chunk = memo[id(v)] = _one(f, v, memo)
                else:
                    chunk = _one(f, v)
            except EncodeError as exc:
                raise EncodeError(f"[{i}].{exc}") from None
            parts.append(chunk)
        return b"".join(parts)
    chunk = _one(f, value, memo)
    if not f.presence and chunk == f.tag + _DEFAULT.get(f.kind, b"\x00"):
        return b""  # proto3: a default scalar without presence is not written
    return chunk


#: The wire value of a default scalar, after its tag (strings and bytes: length 0).
_DEFAULT = {
    K_DOUBLE: bytes(8),
    K_FIXED64: bytes(8),
    K_SFIXED64: bytes(8),
    K_FLOAT: bytes(4),
    K_FIXED32: bytes(4),
    K_SFIXED32: bytes(4),
}


def _map_key(f: Field, key: str) -> Any:
    if f.kind == K_STRING:
        return key
    if f.kind == K_BOOL:
        return key == "true"
    return int(key)


def _one(f: Field, value: Any, memo: dict[int, bytes] | None = None) -> bytes:
    """One occurrence of `f` (tag included)."""
    if f.plan is not None:
        body = encode(f.plan, value, memo)
        return f.tag + varint(len(body)) + body
    if f.kind == K_STRING or f.kind == K_BYTES:
        raw = _text_or_bytes(f, value)
        return f.tag + varint(len(raw)) + raw
    return f.tag + _scalar(f, value)


def _text_or_bytes(f: Field, value: Any) -> bytes:
    if not isinstance(value, str):
        raise EncodeError(f"{f.name}: expected a string, got {value!r}")
    return value.encode() if f.kind == K_STRING else base64.b64decode(value)


def _scalar(f: Field, value: Any) -> bytes:
    """A numeric, bool or enum value without its tag."""
    kind = f.kind
    if kind == K_ENUM:
        if isinstance(value, str):
            number = f.enum.get(value) if f.enum is not None else None
            if number is None:
                raise EncodeError(f"{f.name}: no enum value {value!r}")
            return varint(number)
        return varint(int(value))
    if kind == K_BOOL:
        if not isinstance(value, bool):
            raise EncodeError(f"{f.name}: expected a bool, got {value!r}")
        return b"\x01" if value else b"\x00"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise EncodeError(f"{f.name}: expected a number, got {value!r}")
    if kind == K_VARINT:
        return varint(_integer(f, value))
    if kind == K_ZIGZAG:
        n = _integer(f, value)
        return varint((n << 1) ^ (n >> 63))
    packer = _STRUCTS[kind]
    return packer.pack(float(value) if kind in (K_DOUBLE, K_FLOAT) else _integer(f, value))


def _integer(f: Field, value: Any) -> int:
    try:
        number = int(value)
    except ValueError:
        raise EncodeError(f"{f.name}: expected an integer, got {value!r}") from None
    if number != value and not isinstance(value, str):
        raise EncodeError(f"{f.name}: expected an integer, got {value!r}")
    return number


def _special(plan: Plan, kind: int, doc: Any) -> bytes:
    """A well-known type from its JSON form."""
    fields = plan.fields
    if kind == K_DURATION:
        return _duration(doc)
    if kind == K_WRAPPER:
        value_field = fields["value"]
        return b"" if doc is None else _field_bytes(_without_presence(value_field), doc)
    if kind == K_ANY:
        if not isinstance(doc, dict) or "@type" not in doc:
            raise EncodeError("google.protobuf.Any: expected an object with '@type'")
        type_url = str(doc["@type"])
        inner = plan_for_type_url(type_url)
        body = {k: v for k, v in doc.items() if k != "@type"}
        value = encode(inner, body["value"] if inner.kind != K_MESSAGE else body)
        url = type_url.encode()
        out = b"\x0a" + varint(len(url)) + url
        return out + (b"\x12" + varint(len(value)) + value if value else b"")
    if kind == K_STRUCT:
        if not isinstance(doc, dict):
            raise EncodeError("google.protobuf.Struct: expected an object")
        return _field_bytes(fields["fields"], doc)
    if kind == K_LIST_VALUE:
        if not isinstance(doc, list):
            raise EncodeError("google.protobuf.ListValue: expected a list")
        return _field_bytes(fields["values"], doc)
    return _value(fields, doc)


def _without_presence(f: Field) -> Field:
    return Field(f.name, f.number, f.tag, f.kind, f.repeated, False, f.plan, f.enum, f.map_kv)


def _value(fields: dict[str, Field], doc: Any) -> bytes:
    """google.protobuf.Value: exactly one of its oneof members, so always written."""
    if doc is None:
        return _one(fields["null_value"], 0)
    if isinstance(doc, bool):
        return _one(fields["bool_value"], doc)
    if isinstance(doc, int | float):
        return _one(fields["number_value"], doc)
    if isinstance(doc, str):
        return _one(fields["string_value"], doc)
    if isinstance(doc, dict):
        return _one(fields["struct_value"], doc)
    if isinstance(doc, list):
        return _one(fields["list_value"], doc)
    raise EncodeError(f"google.protobuf.Value: cannot hold {doc!r}")


def _duration(doc: Any) -> bytes:
    """`"1.5s"` -> Duration{seconds: 1, nanos: 500000000}."""
    if not isinstance(doc, str) or not doc.endswith("s"):
        raise EncodeError(f"google.protobuf.Duration: expected a string like '1.5s', got {doc!r}")
    text = doc[:-1]
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    try:
        seconds = int(whole or "0")
        nanos = int((fraction + "000000000")[:9]) if fraction else 0
    except ValueError:
        raise EncodeError(f"google.protobuf.Duration: not a duration: {doc!r}") from None
    if negative:
        seconds, nanos = -seconds, -nanos
    out = b"\x08" + varint(seconds) if seconds else b""
    return out + (b"\x10" + varint(nanos) if nanos else b"")
