-- Argo CD health check for modeldeploy.dev/ModelDeployment.
--
-- Install it as the value of `resource.customizations.health.modeldeploy.dev_ModelDeployment`
-- in the argocd-cm ConfigMap (see argocd-cm-patch.yaml beside this file).
-- Argo CD sets the global `obj` to the live object and reads back hs.status and hs.message.
--
--   a write the API server refused being retried (condition
--   Reconciling=True, reason ApplyFailed), whatever the phase          -> Progressing
--   no status, or status.observedGeneration behind metadata.generation -> Progressing
--   phase Pending or Progressing                                       -> Progressing
--   phase Paused (a pause step, a pause request, spec.paused)          -> Suspended
--   phase Degraded (rolled back, aborted, stuck) or Failed (bad spec)  -> Degraded
--   phase Healthy                                                      -> Healthy
-- hs.message is status.message, the operator's one-line summary.
local hs = {}

local status = obj.status
-- What git asks for is not all applied while a refused write is retried (a quota, a full IP range);
-- status.message names the object and quotes the API server.
if status ~= nil then
  for _, c in ipairs(status.conditions or {}) do
    if c.type == "Reconciling" and c.status == "True" and c.reason == "ApplyFailed" then
      hs.status = "Progressing"
      hs.message = status.message or ""
      return hs
    end
  end
end

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modeldeploy operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the modeldeploy operator to observe generation " .. tostring(generation)
    .. " (last observed " .. tostring(status.observedGeneration) .. ")"
  return hs
end

hs.message = status.message or ""
local phase = status.phase
if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Paused" then
  hs.status = "Suspended"
elseif phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Pending" or phase == "Progressing" then
  hs.status = "Progressing"
else
  -- No phase yet, or one this check does not know: not settled.
  hs.status = "Progressing"
  if hs.message == "" then
    hs.message = "Waiting for the modeldeploy operator to report a phase"
  end
end
return hs
