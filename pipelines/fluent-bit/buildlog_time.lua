-- Sets the record time from buildlog's `timestamp` field (RFC 3339 UTC, milliseconds).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

function buildlog_time(tag, ts, record)
  local s = record["timestamp"]
  if type(s) ~= "string" then return 0, ts, record end
  local y, mo, d, h, mi, se, ms = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d)Z$")
  if not y then return 0, ts, record end
  local secs = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
  return 1, { sec = secs, nsec = tonumber(ms) * 1000000 }, record
end

-- For the loki output (loki.conf): the record time as above, and copies of the fields that
-- become labels and structured metadata, prefixed `loki_`: the loki output takes the fields it
-- uses out of the line, so the line keeps the whole event only if it uses copies. `loki_level`
-- is the level in lower case (`ERROR` -> `error`), as buildlog's own Loki sink, the rules and
-- the dashboards have it.
function buildlog_loki(tag, ts, record)
  local code, time, rec = buildlog_time(tag, ts, record)
  if type(rec["level"]) == "string" then
    rec["loki_level"] = string.lower(rec["level"])
  end
  for _, key in ipairs({ "feature", "correlation_id", "event_id", "trace_id" }) do
    if rec[key] ~= nil then rec["loki_" .. key] = rec[key] end
  end
  if code == 0 then code = 2 end
  return code, time, rec
end
