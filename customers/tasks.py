from celery import shared_task


@shared_task(name="customers.attribute_recoerce", max_retries=5)
def attribute_recoerce_task(attribute_id: int) -> None:
    from customers.services.recoerce import attribute_recoerce

    attribute_recoerce(attribute_id=attribute_id)


@shared_task(name="customers.inbox_drain", max_retries=5)
def inbox_drain_task() -> None:
    from customers.services.inbox import inbox_drain

    inbox_drain()
