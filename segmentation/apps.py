from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    verbose_name = "Segmentation"

    def ready(self):
        from django.db.models.signals import post_migrate, pre_delete

        from customers import signals as customer_signals
        from segmentation import receivers

        customer_signals.events_ingested.connect(receivers.on_events_ingested, dispatch_uid="segments_events")
        customer_signals.profile_changed.connect(receivers.on_profile_changed, dispatch_uid="segments_profile")
        customer_signals.customers_merged.connect(receivers.on_customers_merged, dispatch_uid="segments_merged")
        pre_delete.connect(receivers.on_customer_deleted, sender="customers.Customer", dispatch_uid="segments_erase")
        post_migrate.connect(receivers.after_migrate, sender=self, dispatch_uid="segments_after_migrate")
