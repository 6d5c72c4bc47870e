-- Argo CD health check for epic-operator.dev/EpicConnection (Lua 5.1, reads obj, returns hs).
-- Healthy when Ready=True; Progressing before the first probe and while Epic is unavailable or
-- throttling (retried); Degraded for every other reason (bad key, refused client, invalid
-- scope, invalid settings), including any this script does not know.
local hs = {}
local transient = { Pending = true, EpicUnavailable = true, Throttled = true, KubernetesError = true }
local ready = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first token and capability probe"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Token obtained"
elseif transient[ready.reason] then
  hs.status = "Progressing"
  hs.message = ready.reason .. ": " .. (ready.message or "")
else
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (ready.message or "")
end
return hs
