"""The process-kubelet: pods as local processes on 127.x addresses.

Modules, one concept each: ``agent`` (the daemon's main loop), ``pod`` (one
pod's lifecycle), ``container`` (one process with probes and restarts),
``status`` (pod status from observations), ``env`` (environment resolution),
``volumes`` (host folders and mount-path rewriting), ``dns`` (nss_wrapper hosts
files), ``probes``, ``scheduler`` (binding), ``node`` (the Node object),
``addresses`` (pod IPs), ``daemon`` (starting and stopping the daemon process),
``logs`` (reading container logs).
"""
