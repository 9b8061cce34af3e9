-- list.lua: one shard's page of list_tasks: tasks newest first by the time of their last
-- status change (then by id), of one status and/or type, from the indexes the scripts
-- keep (see _lists.lua); entries of tasks Redis expired are dropped from the indexes
-- on the way. A call looks at a bounded number of entries: while it returns a
-- continuation, call again with it for the rest of the page.
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) status code ('' = any)  arg(2) type name ('' = every type)  arg(3) rows wanted
-- (1..1000)  arg(4) cursor time, ms ('' = none)  arg(5) cursor task id ('' = none): only
-- tasks older than (time, id); with an id and no time, that task's time is looked up
-- arg(6) continuation ('' = a new page)
-- Returns {cursor time ('' = none), continuation ('' = page complete), then id, type,
-- identifier, status, time (ms) per task}, or E_TASK_NOT_FOUND (the cursor task is
-- gone), E_TYPE_NOT_FOUND.
local status, name, limit = tonumber(arg(1)), arg(2), tonumber(arg(3))
if (arg(1) ~= '' and not (status and status >= S_ACCEPTED and status <= S_FAILED))
   or not limit or limit < 1 or limit > 1000 then
  return redis.error_reply('ERR bad status or limit')
end
local CT, CI = tonumber(arg(4)), tonumber(arg(5))
if arg(5) ~= '' and not CI then return redis.error_reply('ERR bad cursor') end
if CI and not CT then
  local t = load_task(CI)
  if not t then return E_TASK_NOT_FOUND end
  CT = changed_at(t)
end
if name ~= '' and not load_type(name) then return E_TYPE_NOT_FOUND end
local sources = arg(6) == '' and list_sources(status, name, CT, CI) or resume_sources(arg(6))
local rows, cont = list_page(sources, limit, {budget = LIST_BUDGET, ghosts = {}, name = name, CT = CT, CI = CI})
local out = {CT and istr(CT) or '', cont}
for _, r in ipairs(rows) do
  for _, v in ipairs({r.id, r.t.type, r.t.ident, r.t.status, r.time}) do out[#out + 1] = v end
end
return out
