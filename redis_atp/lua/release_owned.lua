-- release_owned.lua: every live task an owner holds, except those it is still
-- running, goes back to the queue. Without restart: after a reconnect (a claim
-- whose reply was lost) and at a cold shutdown; the tasks just go back (ACCEPTED,
-- uncharged). With restart: the owner's worker died; each recovery counts against
-- maxrestart (FAILED once used up), so a task that kills every worker that runs it
-- cannot loop forever.
-- KEYS[1..5], ARGV[1..7]: the common convention (_prelude.lua).
-- arg(1) owner digest  arg(2) message  arg(3) restart ('1' or '0')  arg(4) guard key:
-- do nothing while it exists (the worker's heartbeat; '' = none)  arg(5...) ids to keep
-- Returns {id, type, identifier, new status, ...} of the tasks acted on.
if arg(4) ~= '' and redis.call('EXISTS', arg(4)) == 1 then return {} end
local keep = {}
for i = 5, #ARGV - NARG do keep[arg(i)] = true end
local now, msg, restart = now_ms(), arg(2), arg(3) == '1'
return for_owned(arg(1), keep, function(t, ty)
  if restart then recover(t, ty, now, '', msg) else set_status(t, ty, S_ACCEPTED, now, msg) end
end)
