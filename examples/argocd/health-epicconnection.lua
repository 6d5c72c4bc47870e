-- Argo CD health check for epic-operator.dev/EpicConnection (Lua 5.1, reads obj, returns hs).
-- Healthy when Ready=True; Progressing before the first probe and while Epic is unavailable or
-- throttling (retried); Degraded for every other reason (bad key, refused client, invalid
-- scope, invalid settings), including any this script does not know. A Ready connection whose
-- RequestBudget condition is False (the budget cannot hold one walk a day) is Degraded too; one
-- whose roster walks are refused or held (RosterWalks False) stays Healthy with that named, as
-- practitioners then resolve one by one.
local hs = {}
local transient = {
  Pending = true, EpicUnavailable = true, Throttled = true, KubernetesError = true,
  DailyLimitReached = true,
}
local ready = nil
local budget = nil
local walks = nil
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    elseif c.type == "RequestBudget" then
      budget = c
    elseif c.type == "RosterWalks" then
      walks = c
    end
  end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first token and capability probe"
elseif ready.status == "True" and budget ~= nil and budget.status == "False" then
  hs.status = "Degraded"
  hs.message = budget.reason .. ": " .. (budget.message or "")
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Token obtained"
  if walks ~= nil and walks.status == "False" then
    hs.message = hs.message .. "; " .. walks.reason .. ": " .. (walks.message or "")
  end
elseif transient[ready.reason] then
  hs.status = "Progressing"
  hs.message = ready.reason .. ": " .. (ready.message or "")
else
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (ready.message or "")
end
return hs
