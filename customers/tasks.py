from celery import shared_task


@shared_task(name="customers.attribute_recoerce", max_retries=5)
def attribute_recoerce_task(attribute_id: int) -> None:
    from customers.services.recoerce import attribute_recoerce

    attribute_recoerce(attribute_id=attribute_id)
