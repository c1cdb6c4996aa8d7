"""EPCIS 2.0 events: model, JSON-LD and XML readers/writers, validation, canonical hash."""
