"""SHA-256 as Lua for Envoy's LuaJIT, which has no hash function of its own.

Envoy's Lua API offers headers, body, metadata, ``base64Escape`` and
signature verification, but no digest; LuaJIT has the ``bit`` library (32-bit
signed operations). ``SHA256_LUA`` defines ``sha256_hex(message)`` from the
FIPS 180-4 definition; the round constants are computed here, from primes,
rather than typed in. tests/governance/test_gateway_istio.py checks it, inside Envoy,
against ``hashlib`` on messages around every padding boundary.
"""

from __future__ import annotations


def _primes(count: int) -> list[int]:
    found: list[int] = []
    n = 2
    while len(found) < count:
        if all(n % p for p in found if p * p <= n):
            found.append(n)
        n += 1
    return found


def _iroot(value: int, k: int) -> int:
    """The integer k-th root of ``value``, rounded down."""
    low, high = 0, 1 << (value.bit_length() // k + 1)
    while low < high:
        mid = (low + high + 1) // 2
        if mid**k <= value:
            low = mid
        else:
            high = mid - 1
    return low


def _fraction_bits(prime: int, k: int) -> int:
    """The first 32 bits of the fractional part of the prime's k-th root (FIPS 180-4, 4.2.2 and 5.3.3)."""
    return _iroot(prime << (32 * k), k) & 0xFFFFFFFF


ROUND_CONSTANTS = tuple(_fraction_bits(p, 3) for p in _primes(64))
INITIAL_HASH = tuple(_fraction_bits(p, 2) for p in _primes(8))


def _lua_list(values: tuple[int, ...]) -> str:
    # bit.tobit keeps each constant in LuaJIT's signed 32-bit range, where the bit ops work.
    return ", ".join(f"bit.tobit(0x{v:08x})" for v in values)


SHA256_LUA = f"""local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
local byte, char, rep = string.byte, string.char, string.rep
local K = {{{_lua_list(ROUND_CONSTANTS)}}}
local H0 = {{{_lua_list(INITIAL_HASH)}}}

local function be32(x)
  return char(band(rshift(x, 24), 255), band(rshift(x, 16), 255), band(rshift(x, 8), 255), band(x, 255))
end

local function sha256_hex(message)
  local bits = #message * 8
  local padded = message .. "\\128" .. rep("\\0", (55 - #message) % 64)
    .. be32(math.floor(bits / 4294967296)) .. be32(bits % 4294967296)
  local h1, h2, h3, h4, h5, h6, h7, h8 = H0[1], H0[2], H0[3], H0[4], H0[5], H0[6], H0[7], H0[8]
  local w = {{}}
  for chunk = 1, #padded, 64 do
    for i = 0, 15 do
      local b1, b2, b3, b4 = byte(padded, chunk + i * 4, chunk + i * 4 + 3)
      w[i] = bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = h1, h2, h3, h4, h5, h6, h7, h8
    for i = 0, 63 do
      local t1 = tobit(h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(band(e, f), band(bnot(e), g)) + K[i + 1] + w[i])
      local t2 = tobit(bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(a, c), band(b, c)))
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    h1, h2, h3, h4 = tobit(h1 + a), tobit(h2 + b), tobit(h3 + c), tobit(h4 + d)
    h5, h6, h7, h8 = tobit(h5 + e), tobit(h6 + f), tobit(h7 + g), tobit(h8 + h)
  end
  return tohex(h1) .. tohex(h2) .. tohex(h3) .. tohex(h4) .. tohex(h5) .. tohex(h6) .. tohex(h7) .. tohex(h8)
end
"""
