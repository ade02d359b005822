"""One Session's road: pure decisions (planner, lifecycle, status, observe) and the
manifests it builds (builders)."""
