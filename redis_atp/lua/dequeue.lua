-- dequeue.lua: take up to `count` tasks from the head of the queue for one owner
-- (dequeueTask): each gets status SCHEDULED, the owner, a new run number, a random
-- fencing token and a place in its type's live set; its id joins the owner's set.
-- With `start`, each also goes straight on to RUNNING and its type, identifier,
-- handler and input come back (a claim that starts the task in the same round trip).
-- KEYS[1], ARGV[1..4]: the common convention (_prelude.lua).
-- arg(1) owner (serverID)  arg(2) owner digest  arg(3) count  arg(4) message
-- arg(5) start ('1' or '0')  arg(6) message of the RUNNING record (with start)
-- arg(7) token base: a random number; the tasks get tokens base, base + 1, ...
-- Returns {ready, due_in, id, token, ...}: the shard's ready tasks after the claim,
-- ms until its next delayed task is due (-1: none; only when nothing was claimed),
-- then per task {id, token}, plus {type, identifier, handler, input} with start. No
-- task and ready > 0: the claim stopped at its pop limit; call again.
local out, ready = claim(arg(1), arg(2), tonumber(arg(3)), arg(4), arg(5) == '1' and arg(6) or nil,
                         tonumber(arg(7)))
table.insert(out, 1, #out == 0 and next_due_in(now_ms()) or -1)
table.insert(out, 1, ready)
return out
