-- Runs Argo CD's health script for ImageBuild on every recorded status and checks its
-- verdict against the status' own Succeeded and Ready conditions and the case's expectation.
--   lua5.1 tests/health/argocd_test.lua charts/slipway/argocd/health.lua tests/health/statuses.json
-- Prints one line per case and `argocd: N passed, N failed, 0 skipped`; exits 1 on a failure.
local script, recorded = arg[1], arg[2]

-- A JSON reader, enough for what serde_json writes (no \u surrogate pairs are needed:
-- other escapes are kept as written). Arrays and objects become Lua tables, as Argo CD's
-- conversion of an unstructured object does; null becomes nil.
local function decode(text)
  local pos = 1
  local value
  local function space()
    pos = text:find("[^ \t\r\n]", pos) or #text + 1
  end
  local function fail(what)
    error(string.format("%s: JSON: %s at byte %d", recorded, what, pos))
  end
  local escapes = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; return table.concat(out) end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        if e == "u" then
          local code = tonumber(text:sub(pos + 2, pos + 5), 16)
          if code == nil then fail("bad \\u escape") end
          -- UTF-8 of a code point below 0x10000.
          if code < 0x80 then
            out[#out + 1] = string.char(code)
          elseif code < 0x800 then
            out[#out + 1] = string.char(0xC0 + math.floor(code / 64), 0x80 + code % 64)
          else
            out[#out + 1] = string.char(0xE0 + math.floor(code / 4096),
              0x80 + math.floor(code / 64) % 64, 0x80 + code % 64)
          end
          pos = pos + 6
        else
          out[#out + 1] = escapes[e] or e
          pos = pos + 2
        end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
  end
  function value()
    space()
    local c = text:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      space()
      if text:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        space()
        if text:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        space()
        if text:sub(pos, pos) ~= ":" then fail("expected :") end
        pos = pos + 1
        t[k] = value()
        space()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("expected , or }") end
      end
    elseif c == "[" then
      local t = {}
      pos = pos + 1
      space()
      if text:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value()
        space()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("expected , or ]") end
      end
    elseif c == '"' then
      return str()
    elseif text:sub(pos, pos + 3) == "true" then
      pos = pos + 4; return true
    elseif text:sub(pos, pos + 4) == "false" then
      pos = pos + 5; return false
    elseif text:sub(pos, pos + 3) == "null" then
      pos = pos + 4; return nil
    end
    local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if num == nil or num == "" then fail("unexpected character") end
    pos = pos + #num
    return tonumber(num)
  end
  local v = value()
  space()
  if pos <= #text then fail("trailing text") end
  return v
end

-- The script as Argo CD runs it: `obj` set, the result returned.
local function health(o)
  local chunk = assert(loadfile(script))
  local env = setmetatable({ obj = o }, { __index = _G })
  if setfenv then
    setfenv(chunk, env)
  else
    chunk = assert(loadfile(script, "t", env))
  end
  return chunk()
end

-- What the conditions themselves say, for a status written for the current spec.
local function from_conditions(o)
  local s = o.status
  if s == nil or s.observedGeneration ~= o.metadata.generation then
    return "Progressing"
  end
  local by = {}
  for _, c in ipairs(s.conditions or {}) do by[c.type] = c end
  local succeeded, ready = by.Succeeded, by.Ready
  if succeeded == nil or ready == nil then return "missing Succeeded or Ready" end
  if succeeded.status == "True" and ready.status == "True" then return "Healthy", succeeded end
  if succeeded.status == "False" and ready.status == "False" then
    if succeeded.reason == "Cancelled" and ready.reason == "Cancelled" then
      return "Suspended", succeeded
    end
    return "Degraded", succeeded
  end
  if succeeded.status == "Unknown" and ready.status == "False" then return "Progressing", succeeded end
  return "Succeeded=" .. succeeded.status .. " disagrees with Ready=" .. ready.status
end

local f = assert(io.open(recorded, "r"))
local cases = decode(f:read("*a"))
f:close()
local passed, failed = 0, 0
for _, case in ipairs(cases) do
  local ok, hs = pcall(health, case.object)
  local want, cond = from_conditions(case.object)
  local problem
  if not ok then
    problem = "the script failed: " .. tostring(hs)
  elseif type(hs) ~= "table" then
    problem = "the script returned " .. type(hs)
  elseif want ~= case.expect.argo then
    problem = "the conditions say " .. want .. ", the case expects " .. case.expect.argo
  elseif hs.status ~= want then
    problem = "Argo CD says " .. tostring(hs.status) .. ", the conditions say " .. want
  elseif (want == "Degraded" or want == "Suspended")
    and not string.find(hs.message or "", cond.message, 1, true) then
    problem = "the message " .. string.format("%q", tostring(hs.message)) .. " lacks the condition's"
  elseif type(hs.message) ~= "string" or hs.message == "" then
    problem = "no message"
  end
  if problem then
    failed = failed + 1
    print("FAIL " .. case.name .. ": " .. problem)
  else
    passed = passed + 1
    print("ok   " .. case.name .. ": " .. hs.status .. " (" .. hs.message .. ")")
  end
end
if #cases == 0 then
  failed = failed + 1
  print("FAIL no recorded statuses in " .. recorded)
end
print(string.format("argocd: %d passed, %d failed, 0 skipped", passed, failed))
os.exit(failed == 0 and 0 or 1)
