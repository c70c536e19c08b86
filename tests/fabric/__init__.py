"""The message fabric: messages, consumers, both queues, RabbitMQ faults."""
