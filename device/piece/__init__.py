"""The running piece: the loop and its parts (scheduling, part health, sampling, frames, inference, rendering, live parameters, figures, model slots), the behaviour and the voice."""
