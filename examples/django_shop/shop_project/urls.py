from django.urls import path
from shop import views

urlpatterns = [
    path("orders/", views.create_order),
    path("orders/<str:order_id>/", views.show_order),
    path("feedback/", views.leave_feedback),
]
