-- _lists.lua: pages of tasks newest first (list.lua), prepended after _queue.lua. A page
-- merges sources that each give tasks newest first, by (time of the last status change,
-- id): per type its ended indexes and live set (sorted sets, by score), and for ACCEPTED
-- tasks the queue lists, the delayed set and the parked lists, read from their newest
-- end (the order tasks joined them). A call looks at a bounded number of entries; what
-- it did not reach is handed back as a continuation, so no call blocks Redis for long.

local LIST_BUDGET = 1000  -- entries one call looks at

-- The time (ms) of task `t`'s last status change: that of its last log record.
local function changed_at(t)
  local rec = redis.call('HGET', t.key, 'log:' .. t.nlog) or ''
  local s, ms = string.match(rec, '^(%d+)%.(%d+) ')
  return s and tonumber(s) * 1000 + tonumber(ms) or 0
end

local function newer(a, b) return a.time > b.time or (a.time == b.time and a.id > b.id) end

-- Up to about n entries of zset `key` strictly older than (T, I) (T nil: from the newest),
-- newest first, as {score, id}, and whether the set has no more; ties of a score are
-- read whole, so ids order them.
local function read_z(key, T, I, n)
  local out = {}
  local function group(score, below)
    local ids = {}
    for _, m in ipairs(redis.call('ZREVRANGEBYSCORE', key, istr(score), istr(score))) do
      local id = tonumber(m)
      if id and (not below or id < below) then ids[#ids + 1] = id end
    end
    table.sort(ids, function(a, b) return a > b end)
    for _, id in ipairs(ids) do out[#out + 1] = {score, id} end
  end
  if T then group(T, I) end
  local got = redis.call('ZREVRANGEBYSCORE', key, T and '(' .. istr(T) or '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, n)
  local cut = #got == 2 * n and tonumber(got[#got]) or nil
  local i = 1
  while i <= #got do
    local score = tonumber(got[i + 1])
    local from = i
    while i <= #got and tonumber(got[i + 1]) == score do i = i + 2 end
    if score == cut then
      group(score, nil)
    else
      local ids = {}
      for k = from, i - 1, 2 do ids[#ids + 1] = tonumber(got[k]) end
      table.sort(ids, function(a, b) return a > b end)
      for _, id in ipairs(ids) do out[#out + 1] = {score, id} end
    end
  end
  return out, #got < 2 * n
end

-- Whether task `t` (nil: gone) is one source `src` lists; `nq`: its entry's re-queue count.
local function listed_by(src, t, nq, name)
  if not t then return false end
  local k = src.kind
  if k == 'e' then return t.status == src.want end
  if k == 'v' then return is_live(t.status) and (not src.want or t.status == src.want) end
  if t.status ~= S_ACCEPTED or t.nq ~= (tonumber(nq) or 0) or (name ~= '' and t.type ~= name) then return false end
  if k == 'd' then return t.due ~= nil end
  if k == 'p' then return t.parked ~= nil end
  return not t.due and not t.parked
end

-- Fills source `src` with its next rows {time, id, t, pos}; spends `st.budget`. Sorted sets
-- resume strictly older than (src.T, src.I); lists and the delayed set at src.pos entries
-- from their newest end, keeping only tasks older than the page's cursor (st.CT, st.CI).
local function fill(src, st)
  local n = math.min(32, src.chunk)
  src.chunk = src.chunk * 2
  if src.kind == 'e' or src.kind == 'v' then
    local entries, last = read_z(src.key, src.T, src.I, n)
    for _, e in ipairs(entries) do
      st.budget = st.budget - 1
      src.T, src.I = e[1], e[2]
      local t = load_task(e[2])
      if listed_by(src, t) then src.buf[#src.buf + 1] = {time = e[1], id = e[2], t = t}
      elseif not t and src.kind == 'e' then st.ghosts[#st.ghosts + 1] = {src.key, istr(e[2])} end
    end
    src.done = last
    return
  end
  local entries
  if src.kind == 'd' then
    entries = redis.call('ZREVRANGE', src.key, src.pos, src.pos + n - 1)
  else
    entries = {}
    local got = redis.call('LRANGE', src.key, -(src.pos + n), -(src.pos + 1))
    for i = #got, 1, -1 do entries[#entries + 1] = got[i] end
  end
  for _, entry in ipairs(entries) do
    st.budget = st.budget - 1
    src.pos = src.pos + 1
    local id, nq = string.match(entry, '^(%d+):?(%d*)$')
    local t = id and load_task(id)
    if listed_by(src, t, nq, st.name) then
      local row = {time = changed_at(t), id = t.id, t = t, pos = src.pos - 1}
      if not st.CT or newer({time = st.CT, id = st.CI}, row) then src.buf[#src.buf + 1] = row end
    end
  end
  src.done = #entries < n
end

-- Up to `limit` rows of the merged sources, newest first, and the continuation: each
-- source not yet used up, as 'kind key want state' ('' when none is left).
local function list_page(sources, limit, st)
  local rows = {}
  while #rows < limit do
    local best, blocked = nil, false
    for _, src in ipairs(sources) do
      while src.bi > #src.buf and not src.done and st.budget > 0 do fill(src, st) end
      if src.bi > #src.buf and not src.done then blocked = true end
      local r = src.buf[src.bi]
      if r and (not best or newer(r, best.buf[best.bi])) then best = src end
    end
    if blocked or not best then break end
    rows[#rows + 1] = best.buf[best.bi]
    best.bi = best.bi + 1
  end
  for _, g in ipairs(st.ghosts) do redis.call('ZREM', g[1], g[2]) end
  local cont = {}
  for _, src in ipairs(sources) do
    local r = src.buf[src.bi]
    if r or not src.done then
      local state
      if src.kind == 'e' or src.kind == 'v' then
        state = r and (istr(r.time) .. ' ' .. istr(r.id + 1)) or (src.T and istr(src.T) .. ' ' .. istr(src.I) or '- -')
      else
        state = istr(r and r.pos or src.pos)
      end
      cont[#cont + 1] = table.concat({src.kind, src.key, src.want or '-', state}, ' ')
    end
  end
  return rows, table.concat(cont, ';')
end

-- The sources of a first page: per type in scope (`name`, or every type) its ended
-- indexes, live set and parked list, and the queue's lists and delayed set, each as the
-- status filter `status` (nil: any) needs.
local function list_sources(status, name, CT, CI)
  local types, out = {}, {}
  for _, n in ipairs(name ~= '' and {name} or redis.call('HKEYS', K_TYPES)) do types[#types + 1] = load_type(n) end
  local function add(kind, key, want)
    local src = {kind = kind, key = key, want = want, buf = {}, bi = 1, chunk = 4, pos = 0}
    if kind == 'e' or kind == 'v' then src.T, src.I = CT, CI end
    out[#out + 1] = src
  end
  for _, ty in ipairs(types) do
    if not status or status == S_FINISHED then add('e', ty.key .. ':finished', S_FINISHED) end
    if not status or status == S_FAILED then add('e', ty.key .. ':failed', S_FAILED) end
    if not status or is_live(status) then add('v', ty.live, status) end
  end
  -- one type's ACCEPTED tasks are found by walking the queue past other types' entries:
  -- not at all when its counter says it has none
  local queued = not status or status == S_ACCEPTED
  if queued and name ~= '' then queued = tonumber(redis.call('HGET', types[1].key, 'accepted') or '0') > 0 end
  if queued then
    for _, ty in ipairs(types) do add('p', ty.key .. ':parked') end
    add('q', K_QUEUE)
    for _, p in ipairs(redis.call('ZRANGE', K_LEVELS, 0, -1)) do add('q', P_LEVEL .. p) end
    add('d', K_DELAYED)
  end
  return out
end

-- The sources a continuation names, each where the last call left it.
local function resume_sources(cont)
  local out = {}
  for part in string.gmatch(cont, '[^;]+') do
    local kind, key, want, a, b = string.match(part, '^(%a) (%S+) (%S+) (%S+) ?(%S*)$')
    local src = {kind = kind, key = key, want = tonumber(want), buf = {}, bi = 1, chunk = 32, pos = 0}
    if kind == 'e' or kind == 'v' then src.T, src.I = tonumber(a), tonumber(b) else src.pos = tonumber(a) end
    out[#out + 1] = src
  end
  return out
end
