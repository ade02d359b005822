"""Start, stop and inspect a real local Kubernetes control plane on loopback.

There is no container engine here, so kind cannot run. Instead this package does what
controller-runtime's envtest does, plus the parts envtest leaves out: etcd,
kube-apiserver, kube-controller-manager (Job controller, garbage collector, service
account tokens), kube-scheduler, and kwok, which plays the kubelet for fake nodes and
moves pods Running -> Succeeded/Failed according to hack/kwok-stages.yaml.

The command is ``hack/cluster.py`` (see ``cli``). Modules by role:

- decide (pure, unit-tested): ``settings`` (environment, ports, versions, paths),
  ``flags`` (each component's command line), ``pki`` (which certs to make and the openssl
  arguments for them, the kubeconfig text), ``nodes.fake_node``;
- talk: ``certs`` (runs openssl, writes keys and kubeconfigs), ``processes`` (start, stop,
  supervise), ``probes`` (HTTP readiness, waiting), ``nodes`` (register the fake nodes);
- command: ``cli`` (up, down, status, kubeconfig, bin); ``output`` keeps progress on
  stderr and the captured paths on stdout; ``errors`` holds the one failure type.
"""
