# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled twin of `fastmesh.controlplane._wire.encode`: Envoy-JSON documents straight to
protobuf wire bytes.

Encoding every cluster, assignment and route of a 10k-service mesh is the control plane's
hot loop (profiled: it replaced `json_format.ParseDict`, which was most of a build). The
plans come from the Python twin (`plan_for`), copied once into typed objects here; the
well-known types other than Any and Duration are rare and go to the twin's code. Output and
error messages are the twin's, byte for byte (`tests/controlplane/test_wire.py`).
"""

from fastmesh.controlplane import _wire as _twin

__all__ = ["encode"]

cdef int K_MESSAGE = _twin.K_MESSAGE
cdef int K_STRING = _twin.K_STRING
cdef int K_BYTES = _twin.K_BYTES
cdef int K_BOOL = _twin.K_BOOL
cdef int K_VARINT = _twin.K_VARINT
cdef int K_ENUM = _twin.K_ENUM
cdef int K_ZIGZAG = _twin.K_ZIGZAG
cdef int K_DURATION = _twin.K_DURATION
cdef int K_ANY = _twin.K_ANY
cdef object EncodeError = _twin.EncodeError
cdef object _plan_for_type_url = _twin.plan_for_type_url
cdef object _twin_field_bytes = _twin._field_bytes
cdef object _twin_special = _twin._special
cdef object _twin_duration = _twin._duration
#: Kinds written as a varint or fixed-width value (not length-delimited).
cdef frozenset _SCALAR_WIRE = frozenset(_twin._WIRE_TYPE)


cdef class _Field:
    cdef object py
    cdef str name
    cdef int number
    cdef int kind
    cdef bytes tag
    cdef bint repeated
    cdef bint presence
    cdef bint packed
    cdef bint fixed_width
    cdef bytes default_chunk
    cdef _Plan plan
    cdef dict enum
    cdef _Field key_f
    cdef _Field value_f


cdef class _Plan:
    cdef object py
    cdef str full_name
    cdef dict fields
    cdef int kind


cdef dict _PLANS = {}


cdef _Plan _plan(object py):
    cdef _Plan plan = _PLANS.get(py.full_name)
    if plan is not None:
        return plan
    plan = _Plan()
    plan.py = py
    plan.full_name = py.full_name
    plan.kind = py.kind
    plan.fields = {}
    _PLANS[py.full_name] = plan  # before the fields: types may recurse
    for key, f in py.fields.items():
        plan.fields[key] = _field(f)
    return plan


cdef _Field _field(object py):
    cdef _Field f = _Field()
    f.py = py
    f.name = py.name
    f.number = py.number
    f.kind = py.kind
    f.tag = py.tag
    f.repeated = py.repeated
    f.presence = py.presence
    f.plan = _plan(py.plan) if py.plan is not None else None
    f.enum = py.enum
    f.packed = py.kind in _SCALAR_WIRE and (py.tag[0] & 7) == 2
    f.fixed_width = py.kind in _SCALAR_WIRE and py.kind not in (K_VARINT, K_ENUM, K_BOOL, K_ZIGZAG)
    f.default_chunk = py.tag + b"\x00"
    if py.map_kv is not None:
        f.key_f = _field(py.map_kv[0])
        f.value_f = _field(py.map_kv[1])
    return f


cdef bytes _varint(object value):
    cdef unsigned char buf[10]
    cdef int n = 0
    cdef unsigned long long v
    if value < 0:
        value += 1 << 64
    v = value
    while v >= 0x80:
        buf[n] = (v & 0x7F) | 0x80
        v >>= 7
        n += 1
    buf[n] = <unsigned char>v
    return buf[:n + 1]


cpdef bytes encode(object plan, object doc, dict memo=None):
    """`doc` (Envoy JSON for `plan`'s message type) as deterministic wire bytes; see
    `fastmesh.controlplane._wire.encode`."""
    return _encode(_plan(plan), doc, memo)


cdef bytes _encode(_Plan plan, object doc, dict memo):
    cdef list out
    cdef _Field f
    cdef bytes chunk
    if plan.kind != K_MESSAGE:
        return _special(plan, doc, memo)
    if type(doc) is not dict:
        raise EncodeError(f"{plan.full_name}: expected an object, got {type(doc).__name__}")
    out = []
    for key, value in (<dict>doc).items():
        f = plan.fields.get(key)
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
    return b"".join([c for _, c in out])


cdef bytes _field_bytes(_Field f, object value, dict memo):
    cdef list parts
    cdef bytes chunk
    cdef bytes entry
    cdef Py_ssize_t i
    if f.key_f is not None:
        if type(value) is not dict:
            raise EncodeError(f"{f.name}: expected a map")
        parts = []
        for k in sorted(value):
            entry = _one(f.key_f, _map_key(f.key_f, k), None) + _one(f.value_f, value[k], None)
            parts.append(f.tag + _varint(len(entry)) + entry)
        return b"".join(parts)
    if f.repeated:
        if f.packed or type(value) is not list:
            return _twin_field_bytes(f.py, value)  # rare: the twin's code and messages
        parts = []
        for i in range(len(<list>value)):
            v = (<list>value)[i]
            try:
                if memo is not None and f.plan is not None:
                    chunk = memo.get(id(v))
                    if chunk is None:
                        chunk = _one(f, v, memo)
                        memo[id(v)] = chunk
                else:
                    chunk = _one(f, v, None)
            except EncodeError as exc:
                raise EncodeError(f"[{i}].{exc}") from None
            parts.append(chunk)
        return b"".join(parts)
    if f.plan is not None:
        return _one(f, value, memo)
    if f.fixed_width:
        return _twin_field_bytes(f.py, value)  # doubles and fixed ints: rare, the twin's
    chunk = _one(f, value, None)
    if not f.presence and chunk == f.default_chunk:
        return b""  # proto3: a default scalar without presence is not written
    return chunk


cdef object _map_key(_Field f, str key):
    if f.kind == K_STRING:
        return key
    if f.kind == K_BOOL:
        return key == "true"
    return int(key)


cdef bytes _one(_Field f, object value, dict memo):
    """One occurrence of `f` (tag included)."""
    cdef bytes body
    cdef object number
    if f.plan is not None:
        body = _encode(f.plan, value, memo)
        return f.tag + _varint(len(body)) + body
    if f.kind == K_STRING:
        if type(value) is not str:
            raise EncodeError(f"{f.name}: expected a string, got {value!r}")
        body = (<str>value).encode()
        return f.tag + _varint(len(body)) + body
    if f.kind == K_ENUM:
        if type(value) is str:
            number = f.enum.get(value)
            if number is None:
                raise EncodeError(f"{f.name}: no enum value {value!r}")
            return f.tag + _varint(number)
        return f.tag + _varint(int(value))
    if f.kind == K_BOOL:
        if type(value) is not bool:
            raise EncodeError(f"{f.name}: expected a bool, got {value!r}")
        return f.tag + (b"\x01" if value else b"\x00")
    if f.kind == K_VARINT and type(value) is int:
        return f.tag + _varint(value)
    return f.tag + _twin._scalar(f.py, value) if f.kind != K_BYTES else _twin._one(f.py, value)


cdef bytes _special(_Plan plan, object doc, dict memo):
    cdef bytes url
    cdef bytes value
    if plan.kind == K_DURATION:
        return _twin_duration(doc)
    if plan.kind != K_ANY:
        return _twin_special(plan.py, plan.kind, doc)
    if type(doc) is not dict or "@type" not in doc:
        raise EncodeError("google.protobuf.Any: expected an object with '@type'")
    type_url = str(doc["@type"])
    inner = _plan(_plan_for_type_url(type_url))
    body = {k: v for k, v in (<dict>doc).items() if k != "@type"}
    value = _encode(inner, body["value"] if inner.kind != K_MESSAGE else body, memo)
    url = type_url.encode()
    out = b"\x0a" + _varint(len(url)) + url
    return out + (b"\x12" + _varint(len(value)) + value if value else b"")
