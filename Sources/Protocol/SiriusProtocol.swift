/// Messages, framing and transports between `sirius-coord` and `sirius-worker`.
public enum SiriusProtocol {}
