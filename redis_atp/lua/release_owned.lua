-- release_owned.lua: every live task an owner holds, except those it is still
-- running, goes back to the queue, and the owner stops waiting for hand-offs. Without
-- restart: after a reconnect (a claim whose reply was lost), when a worker stops;
-- the tasks just go back (ACCEPTED, uncharged). With restart: the owner's worker
-- died; each recovery of a task that had started counts against maxrestart (FAILED
-- once used up), so a task that kills every worker that runs it cannot loop
-- forever. Tasks the owner claimed but never started (SCHEDULED: handed to it, or
-- claimed by the seed's dequeueTask) always go back uncharged; one handed to it and
-- not taken goes back even if kept (no one runs it).
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) owner digest  arg(2) message  arg(3) restart ('1' or '0')  arg(4) guard key:
-- do nothing while it exists (the worker's heartbeat; '' = none)  arg(5) worker id to
-- drop from the registry afterwards ('' = none)  arg(6) the registry hash  arg(7) the
-- worker's heartbeat key  arg(8...) ids to keep
-- Returns 0 when the guard key exists (nothing done), else {id, type, identifier,
-- new status, ...} of the tasks acted on.
if arg(4) ~= '' and redis.call('EXISTS', arg(4)) == 1 then return 0 end
local keep = {}
for i = 8, #ARGV - NARG do keep[arg(i)] = true end
local now, msg, restart = now_ms(), arg(2), arg(3) == '1'
local out = unwait(arg(1), msg)
for _, v in ipairs(for_owned(arg(1), keep, function(t, ty)
  if restart and t.status ~= S_SCHEDULED then recover(t, ty, now, '', msg)
  else set_status(t, ty, S_ACCEPTED, now, msg) end
end)) do out[#out + 1] = v end
if arg(5) ~= '' then
  redis.call('HDEL', arg(6), arg(5))
  redis.call('DEL', arg(7))
end
return out
