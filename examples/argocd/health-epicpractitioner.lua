-- Argo CD health check for epic-operator.dev/EpicPractitioner (Lua 5.1, reads obj, returns hs).
-- Healthy only when Ready=True for the current generation; Degraded when the operator cannot
-- sync (a refused write, bad credentials, a missing or ambiguous NPI, an invalid spec);
-- Suspended while paused; Progressing otherwise (not yet observed, or a transient Epic error).
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

local degraded = {
  WriteDisabled = true, Unauthorized = true, InvalidScope = true, NotFound = true,
  AmbiguousNPI = true, InvalidSpec = true, WriteNotApplied = true, Invalid = true, Conflict = true,
  IdentityMismatch = true, SearchIncomplete = true,
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
  elseif degraded[synced.reason] then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
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

hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.reason .. ": " .. ready.message
else
  hs.message = "Waiting for the first sync"
end
return hs
