-- The gateway's API-key check (rendered by components/governance/api_governance.py).
-- The key arrives as the Basic-auth username; the table holds only salted SHA-256 digests
-- of keys. Every step is linear in the header's length, and the header is bounded before
-- any of them: no request can make the gateway work harder than MAX_HEADER bytes allow.
-- (Rendered as a Python string.Template: $${name} is filled in, $$$$ is a literal dollar sign.)
local SALT = ${salt}
local CONSUMERS = {
${entries}
}
local MAX_HEADER = ${max_header}
local MAX_CREDENTIALS = ${max_credentials}
local B64 = {}
for i = 1, 64 do
  B64[string.byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", i)] = i - 1
end
local EQUALS = string.byte("=")

-- Standard base64, padding optional (RFC 7617 clients differ); nil if it is not base64.
local function unbase64(text)
  local last = #text
  while last > 0 and text:byte(last) == EQUALS do
    last = last - 1
  end
  text = text:sub(1, last)
  if #text % 4 == 1 or text:find("[^%w%+/]") then
    return nil
  end
  local out = {}
  for i = 1, #text, 4 do
    local group, n = 0, 0
    for j = i, math.min(i + 3, #text) do
      group, n = group * 64 + B64[text:byte(j)], n + 1
    end
    group = group * 64 ^ (4 - n)
    local bytes = string.char(math.floor(group / 65536) % 256, math.floor(group / 256) % 256, group % 256)
    out[#out + 1] = bytes:sub(1, n - 1)
  end
  return table.concat(out)
end

-- The consumer one Authorization value names, or nil. The scheme is case-insensitive.
local function consumer_of(credentials)
  local scheme, token = credentials:match("^%s*(%S+)%s+(%S+)%s*$$")
  if scheme == nil or scheme:lower() ~= "basic" then
    return nil
  end
  local decoded = unbase64(token)
  local key = decoded and decoded:match("^[^:]+")
  return key and CONSUMERS[sha256_hex(SALT .. key)]
end

local function refuse(request_handle)
  request_handle:respond(
    {[":status"] = "401", ["www-authenticate"] = 'Basic realm="${realm}"', ["content-type"] = "text/plain"},
    "missing or unknown API key\n")
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local spoofed = {}
  for name, _ in pairs(headers) do
    if (name:lower():gsub("_", "-")):sub(1, ${prefix_length}) == "${header_prefix}" then
      spoofed[#spoofed + 1] = name
    end
  end
  for _, name in ipairs(spoofed) do
    headers:remove(name)
  end
  local authorization = headers:get("authorization") or ""
  if #authorization > MAX_HEADER then
    refuse(request_handle)
    return
  end
  -- A header sent twice arrives joined with ","; every value must name the same consumer.
  local consumer, values = nil, 0
  for credentials in authorization:gmatch("[^,]+") do
    local named = consumer_of(credentials)
    values = values + 1
    if named == nil or values > MAX_CREDENTIALS or (consumer ~= nil and consumer ~= named) then
      consumer = nil
      break
    end
    consumer = named
  end
  if consumer == nil then
    refuse(request_handle)
    return
  end
  headers:remove("authorization")
  headers:add("${consumer_header}", consumer)
end
