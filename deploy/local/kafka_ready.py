"""Exit 0 when a Kafka client can produce to and consume from the broker, else 1.

Usage: python deploy/local/kafka_ready.py HOST:PORT [TIMEOUT_S]
"""

import asyncio
import sys
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

TOPIC = "_koalr.readiness"


async def round_trip(bootstrap: str) -> None:
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(TOPIC, token, partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            if any(r.value == token for r in batch.get(tp, [])):
                return
    finally:
        await consumer.stop()


def main() -> int:
    bootstrap = sys.argv[1]
    timeout_s = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    try:
        asyncio.run(asyncio.wait_for(round_trip(bootstrap), timeout_s))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        print(f"kafka not ready at {bootstrap}: {type(exc).__name__}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
