"""Multi-host training: ``TF_CONFIG`` read and checked, the cluster joined within a bounded time,
and the one question the run's writers ask (``is_chief``).

``MultiWorkerMirroredStrategy`` takes the cluster from the ``TF_CONFIG`` environment variable, e.g.
``{"cluster": {"chief": ["10.0.0.1:2222"], "worker": ["10.0.0.2:2222"]}, "task": {"type": "chief",
"index": 0}}`` (the same cluster on every host, each its own task). Left to itself it reports a
misdescribed cluster as a gRPC error deep inside TensorFlow, and waits on for a worker that never
starts (a lone chief here was still waiting after 10 minutes). Here a bad ``TF_CONFIG`` is a
one-line ConfigError before anything starts, and joining waits at most ``timeout`` seconds.
"""

import json
import os
import socket

from tfunmask.config import ConfigError

JOBS = ("chief", "worker")


def _address(job, address):
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"TF_CONFIG: {job} address {address!r} is not host:port")
    return address


def read_tf_config(text=None):
    """The cluster and task ``TF_CONFIG`` (or ``text``) describes, checked: ``(cluster, task)``
    with ``cluster = {job: [host:port]}`` and ``task = (type, index)``; None where it is unset or
    names no cluster. ConfigError (one line) for anything the strategy could not use."""
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        return None
    try:
        values = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG is not JSON ({error})") from None
    if not isinstance(values, dict) or not values.get("cluster"):
        return None
    cluster = values["cluster"]
    if not isinstance(cluster, dict) or set(cluster) - set(JOBS):
        raise ConfigError(f"TF_CONFIG: the cluster may name only chief and worker jobs (got {cluster!r})")
    if not all(isinstance(addresses, list) for addresses in cluster.values()):
        raise ConfigError(f"TF_CONFIG: each job of the cluster must list host:port addresses (got {cluster!r})")
    cluster = {job: [_address(job, a) for a in addresses] for job, addresses in cluster.items()}
    if len(cluster.get("chief", [])) > 1:
        raise ConfigError("TF_CONFIG: a cluster has at most one chief")
    every = [a for addresses in cluster.values() for a in addresses]
    if not every or len(set(every)) < len(every):
        raise ConfigError(f"TF_CONFIG: the cluster needs distinct addresses, one per task (got {every})")
    task = values.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ConfigError(f'TF_CONFIG: "task" must name this process\'s job, one of '
                          f"{', '.join(cluster)} (got {task!r})")
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise ConfigError(f"TF_CONFIG: task index {index!r} is out of range: the cluster has "
                          f"{len(cluster[task['type']])} {task['type']} task(s)")
    return cluster, (task["type"], index)


def join(cluster, task, timeout):
    """Makes the ``MultiWorkerMirroredStrategy`` of ``cluster`` as ``task`` (from
    ``read_tf_config``) once every task has registered, or raises ConfigError after ``timeout``
    seconds.

    The strategy configures TensorFlow's coordination service itself, with no registration
    deadline that holds; configured first, the service keeps these settings. The deadline binds only with
    ``cluster_register_with_barrier``, which ``configure_coordination_service`` does not take, so
    it is set on the configuration that call made (neither has a public API).
    """
    import tensorflow as tf
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    leader = "chief" if "chief" in cluster else "worker"
    tf_context = context.context()
    tf_context.configure_coordination_service(
        "standalone", service_leader=f"/job:{leader}/replica:0/task:0",
        cluster_register_timeout_in_ms=int(timeout * 1000),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
                          for job in JOBS if job in cluster])
    tf_context.coordination_service.cluster_register_with_barrier = True
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except tf.errors.OpError as error:
        own = cluster[task[0]][task[1]]
        if "gRPC server" in str(error):
            raise ConfigError(f"cannot listen on {own}, this task's address in TF_CONFIG: is it this "
                              "machine's, and is the port free?") from None
        others = ", ".join(a for addresses in cluster.values() for a in addresses if a != own)
        raise ConfigError(f"the cluster in TF_CONFIG did not come together within {timeout:g} s "
                          f"(--cluster_timeout): is a task started at each of {others}? "
                          f"({type(error).__name__})") from None


def is_chief(strategy):
    """Whether this process writes the run's files (TensorBoard, config, samples, summary,
    export): always, except on the non-chief workers of a multi-worker strategy."""
    return strategy.extended.should_checkpoint


def local_tf_configs(tasks):
    """``TF_CONFIG`` values of a cluster of ``tasks`` processes on this machine (a chief and
    ``tasks - 1`` workers on free 127.0.0.1 ports), chief first: for tests and benchmarks."""
    sockets = [socket.socket() for _ in range(tasks)]
    try:
        for s in sockets:  # held open together, so the ports differ
            s.bind(("127.0.0.1", 0))
        addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()
    cluster = {"chief": addresses[:1], "worker": addresses[1:]}
    return [json.dumps({"cluster": cluster, "task": {"type": job, "index": index}})
            for job in JOBS for index in range(len(cluster[job]))]
