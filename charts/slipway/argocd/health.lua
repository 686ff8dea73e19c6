-- Argo CD health of a Slipway ImageBuild (build.slipway.dev/ImageBuild), for
-- resource.customizations.health.build.slipway.dev_ImageBuild in argocd-cm.
-- Progressing until the controller has seen the current spec and while the build runs,
-- Healthy once the image is pushed, Degraded with the failure's reason and message, Suspended
-- once cancelled (spec.cancel: stopped on purpose, not broken; unset it to build again).
-- Lua 5.1 (Argo CD runs gopher-lua); tests/health/run.sh runs it on recorded statuses.
local hs = { status = "Progressing", message = "Waiting for the controller" }
local status = obj.status
if status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
-- A status written for an older spec says nothing about the current one.
if generation ~= nil and status.observedGeneration ~= generation then
  hs.message = "Waiting for the controller to see generation " .. tostring(generation)
  return hs
end
local succeeded
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Succeeded" then
      succeeded = c
    end
  end
end
if succeeded == nil then
  return hs
end
if generation ~= nil and succeeded.observedGeneration ~= nil and succeeded.observedGeneration ~= generation then
  return hs
end
if succeeded.status == "True" then
  hs.status = "Healthy"
  hs.message = succeeded.message or "Pushed"
elseif succeeded.status == "False" and succeeded.reason == "Cancelled" then
  hs.status = "Suspended"
  hs.message = "Cancelled: " .. (succeeded.message or "")
elseif succeeded.status == "False" then
  hs.status = "Degraded"
  hs.message = (succeeded.reason or "Failed") .. ": " .. (succeeded.message or "")
else
  hs.message = (status.phase or succeeded.reason or "Building") .. ": " .. (succeeded.message or "")
end
return hs
