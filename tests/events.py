"""Reading what a run wrote for TensorBoard, in tests."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def logged_steps(folder, tag):
    """The steps of every event with this tag (an image or a scalar) in the event files under ``folder``,
    file by file in the order they were written."""
    steps = []
    for events in sorted(folder.rglob("events.out.tfevents.*"), key=lambda path: path.name):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
        accumulator.Reload()
        tags = accumulator.Tags()
        read = accumulator.Images if tag in tags["images"] else accumulator.Scalars if tag in tags["scalars"] else None
        steps += [event.step for event in read(tag)] if read else []
    return steps


def logged_values(folder, tag):
    """The values of every scalar event with this tag in the event files under ``folder``, as ``logged_steps``."""
    values = []
    for events in sorted(folder.rglob("events.out.tfevents.*"), key=lambda path: path.name):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        values += [event.value for event in accumulator.Scalars(tag)] if tag in accumulator.Tags()["scalars"] else []
    return values
