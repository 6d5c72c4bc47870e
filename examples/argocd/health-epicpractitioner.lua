-- Argo CD health check for epic-operator.dev/EpicPractitioner (Lua 5.1, reads obj, returns hs).
-- Healthy when Ready=True for the current generation, or when managementPolicy Observe reports
-- drift it never writes (the drift is named in the message). Suspended while paused.
-- Progressing while not yet observed or while a transient failure is retried (the reasons in
-- `transient`). Degraded for every other failure: a reason this script does not know is a
-- failure someone must look at, never an endless Progressing. A test checks this list against
-- every reason the operator can set.
local hs = {}

local function condition(kind)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end

local transient = {
  Pending = true, Unknown = true, Drifted = true, Conflict = true, EpicUnavailable = true,
  Throttled = true, PagingExpired = true, KubernetesError = true, FinalizerError = true,
  DailyLimitReached = true,
}

if obj.metadata ~= nil and obj.metadata.annotations ~= nil
    and obj.metadata.annotations["epic-operator.dev/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Paused by annotation epic-operator.dev/paused"
  return hs
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
local observed = obj.status ~= nil and obj.status.observedGeneration or nil
if observed == nil or (generation ~= nil and observed ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end

local synced = condition("Synced")
if synced ~= nil and synced.status == "False" then
  if synced.reason == "Paused" then
    hs.status = "Suspended"
  elseif transient[synced.reason] then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = synced.reason .. ": " .. (synced.message or "")
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "In sync with Epic"
  return hs
end

if synced ~= nil and synced.status == "True" and synced.reason == "ObserveOnly" then
  -- Observe is a choice: the operator did what was asked. The drift stays visible.
  local in_sync = condition("InSync")
  hs.status = "Healthy"
  hs.message = "ObserveOnly: drift is reported, never written"
  if in_sync ~= nil and in_sync.status ~= "True" then
    hs.message = hs.message .. "; " .. in_sync.reason .. ": " .. (in_sync.message or "")
  end
  return hs
end

hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.reason .. ": " .. ready.message
else
  hs.message = "Waiting for the first sync"
end
return hs
