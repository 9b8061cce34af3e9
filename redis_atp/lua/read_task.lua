-- read_task.lua: read a task by id, or by (type, identifier) through its digest.
-- A read, not a state change: it exists so that a lookup by id (id bucket, then
-- task hash) and the log (every log:<n> field, in order) take one round trip.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) task id, or '' to name it by arg(2) digest, arg(3) type, arg(4) identifier
-- arg(5) what: 'info' {id, type, identifier, status, owner, run, restarts, cancelled}
--              'log' {record, ...}  'response' {response, response type, MIME type}
--              'input' {input}  'show' {info..., handler, ttl ms, deadline ms ('' = none),
--              response length, MIME type, input, 1 if it has an owner now, retries used,
--              due time ms ('' = not delayed), priority level, record...}
-- Returns that list, or E_TASK_NOT_FOUND.
local key
if arg(1) ~= '' then
  local digest = redis.call('HGET', bucket_key(arg(1)), arg(1))
  if digest and redis.call('HGET', P_TASK .. digest, 'id') == arg(1) then key = P_TASK .. digest end
else
  local v = redis.call('HMGET', P_TASK .. arg(2), 'type', 'ident')
  if v[1] and v[1] == arg(3) and v[2] == arg(4) then key = P_TASK .. arg(2) end
end
if not key then return E_TASK_NOT_FOUND end

local function log()
  local fields = {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local n = string.match(f, '^log:(%d+)$')
    if n then fields[#fields + 1] = tonumber(n) end
  end
  table.sort(fields)
  for i, n in ipairs(fields) do fields[i] = 'log:' .. n end
  if #fields == 0 then return {} end
  return redis.call('HMGET', key, unpack(fields))
end

local what = arg(5)
if what == 'log' then return log() end
if what == 'response' then return redis.call('HMGET', key, 'response', 'response_type', 'mime') end
if what == 'input' then return redis.call('HMGET', key, 'input') end
local info = redis.call('HMGET', key, 'id', 'type', 'ident', 'status', 'owner', 'run', 'restarts', 'cancelled')
if what == 'info' then return info end
local ty = load_type(info[2]) or ORPHAN
local changed = ty.live and ty.timeout > 0 and redis.call('ZSCORE', ty.live, info[1])
local deadline = changed and string.format('%d', tonumber(changed) + math.floor(ty.timeout * 1000)) or ''
local extra = {ty.handler or '', redis.call('PTTL', key), deadline, redis.call('HSTRLEN', key, 'response'),
               redis.call('HGET', key, 'mime') or '', redis.call('HGET', key, 'input'),
               redis.call('HEXISTS', key, 'odig'), redis.call('HGET', key, 'retries') or '0',
               redis.call('HGET', key, 'due') or '', redis.call('HGET', key, 'prio') or '0'}
for _, v in ipairs(extra) do info[#info + 1] = v end
for _, r in ipairs(log()) do info[#info + 1] = r end
return info
