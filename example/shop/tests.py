"""The example's workflows on a real Temporal server: ``python example/manage.py test shop``.

Shows how a project tests its workflows with ``facade.testing``: the time-skipping server and
an in-process worker, so a 24-hour sleep takes milliseconds. The worker's threads must see the
rows, hence TransactionTestCase and a file database (settings: DATABASES TEST NAME).
"""

import json
from datetime import timedelta

from django.contrib.auth.models import User
from django.test import TransactionTestCase
from django.utils.html import escape
from rest_framework.test import APIClient

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowRun, WorkflowStatus
from facade.testing import TemporalTestEnvironment


class ShopWorkflowTests(TransactionTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = TemporalTestEnvironment(time_skipping=True)
        cls.env.start()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()
        super().tearDownClass()

    def test_quick_start_workflows_complete(self):
        onboarding = self.env.wait_until_finished(engine.start("user_onboarding", user_id=1))
        self.assertEqual(onboarding.status, WorkflowStatus.COMPLETED, onboarding.error)
        self.assertTrue(onboarding.data["email_sent"])

        order = self.env.wait_until_finished(engine.start("order_fulfillment", order_id=7))
        self.assertEqual(order.status, WorkflowStatus.COMPLETED, order.error)
        self.assertEqual(
            list(order.step_executions.values_list("step_name", flat=True)),
            ["confirm_payment", "reserve_inventory", "ship_order"],
        )

    def test_routing_branches_on_the_order_total(self):
        big = self.env.wait_until_finished(engine.start("order_routing", order_total=1500))
        small = self.env.wait_until_finished(engine.start("order_routing", order_total=20))
        self.assertEqual(
            list(big.step_executions.values_list("step_name", flat=True)),
            ["process_order", "require_approval", "fulfill_immediately"],
        )
        self.assertEqual(
            list(small.step_executions.values_list("step_name", flat=True)), ["process_order", "fulfill_immediately"]
        )

    def test_approval_signals_then_answer(self):
        run = engine.start("approval")
        self.env.wait_until(run, lambda r: r.waiting_signal == "manager_approval")
        self.assertEqual(engine.signal("manager_approval", {"approved": True, "notes": "Looks good"}), 1)
        self.env.wait_until(run, lambda r: r.waiting_signal == "user_response")
        self.assertEqual(engine.signal("user_response", {"answer": "yes"}), 1)
        run = self.env.wait_until_finished(run)
        self.assertEqual(run.data, {"approved": True, "notes": "Looks good", "answer": "yes", "status": "answered"})

    def test_approval_expires_after_seven_days(self):
        run = engine.start("approval")
        self.env.wait_until(run, lambda r: r.waiting_signal == "manager_approval")
        engine.signal("manager_approval", {"approved": True})
        self.env.wait_until(run, lambda r: r.waiting_signal == "user_response")
        self.env.skip_time(timedelta(days=7))
        run = self.env.wait_until_finished(run)
        self.assertEqual((run.current_step, run.data["status"]), ("send_final_notice", "expired"))

    def test_reminders_escalate_after_three_days(self):
        run = engine.start("reminders")
        for sent in (1, 2):
            self.env.wait_until(
                run, lambda r, n=sent: r.status == WorkflowStatus.WAITING and r.data["reminders_sent"] == n
            )
            self.env.skip_time(timedelta(hours=24))
        run = self.env.wait_until_finished(run)
        self.assertEqual(run.data, {"reminders_sent": 3, "escalated": True})

    def test_gift_order_links_its_child_then_waits_for_the_confirm_button(self):
        run = engine.start("gift_order", order_id=5)
        run = self.env.wait_until(run, lambda r: r.current_step == "confirm_shipment" and r.status == "suspended")
        child = run.children.get()
        self.assertEqual(run.data["wrapping"], f"gift_wrapping run {child.pk} for gift_order run {run.pk}")
        self.assertTrue(run.data["wrapped"])
        self.assertEqual(run.current_step_display["action_name"], "confirm_gift_shipment")

        api = APIClient()
        api.force_login(User.objects.create_user("packer"))
        schema = api.get("/statezero/actions-schema/confirm_gift_shipment/").json()
        self.assertEqual(schema["fields"], [])  # a button: no form fields
        answer = api.post("/statezero/actions/confirm_gift_shipment/", {"workflow_run_id": run.pk}, format="json")
        self.assertEqual(answer.status_code, 200, answer.content)
        run = self.env.wait_until_finished(run)
        self.assertEqual((run.status, run.data["confirmed_by"]), (WorkflowStatus.COMPLETED, "packer"))
        shown = [(s.step_name, s.step_display["visible"]) for s in run.step_executions.all()]
        self.assertEqual(shown, [("send_to_wrapping", True), ("after_wrapping", False), ("confirm_shipment", True)])

    def test_home_page_starts_runs_and_lists_them_with_their_context(self):
        response = self.client.post("/runs/start/", {"workflow": "user_onboarding"}, follow=True)
        self.assertContains(response, "Started user_onboarding run")
        run = response.context["rows"][0]["run"]
        # Let it finish: the next test empties the tables under a run still writing to them.
        run = self.env.wait_until_finished(run)
        self.assertEqual(run.status, WorkflowStatus.COMPLETED)
        context = escape(json.dumps(run.data))
        self.assertIn('"email_sent": true', json.dumps(run.data))
        home = self.client.get("/")
        self.assertContains(home, f"/statezero/ui/runs/{run.pk}/")
        self.assertContains(home, f'<code class="ctx">{context}</code>', html=False)
        # The partial the page fetches every few seconds: the same rows, the same Context.
        table = self.client.get("/runs/table/")
        self.assertContains(table, f'<tr data-run="{run.pk}" data-status="completed">')
        self.assertContains(table, context)
        self.assertContains(home, 'data-url="/runs/table/"')

    def test_a_cancelled_run_shows_its_reason_not_an_error(self):
        run = engine.start("approval")
        self.env.wait_until(run, lambda r: r.waiting_signal == "manager_approval")
        response = self.client.post("/runs/cancel/", {"run": run.pk}, follow=True)
        self.assertContains(response, f"Run {run.pk}: cancel requested.")
        run = self.env.wait_until_finished(run)
        self.assertEqual(run.status, WorkflowStatus.CANCELLED)
        row = self.client.get("/runs/table/").content.decode()
        self.assertIn('<span class="status status-cancelled">cancelled</span>', row)
        self.assertIn('<div class="muted">cancelled from the example&#x27;s home page</div>', row)
        self.assertNotIn("(error)", row)
        self.assertNotIn('class="error"', row)

    def test_the_run_pages_link_leads_through_login_to_the_page(self):
        User.objects.create_user("visitor", password="a-long-password")
        home = self.client.get("/")
        self.assertContains(home, 'href="/statezero/ui/"')
        self.assertContains(home, 'href="/accounts/login/?next=/"')
        to_login = self.client.get("/statezero/ui/")
        self.assertRedirects(to_login, "/accounts/login/?next=/statezero/ui/")
        form = self.client.get(to_login["Location"])
        self.assertContains(form, 'name="next" value="/statezero/ui/"')
        page = self.client.post(
            "/accounts/login/",
            {"username": "visitor", "password": "a-long-password", "next": "/statezero/ui/"},
            follow=True,
        )
        self.assertEqual(page.redirect_chain, [("/statezero/ui/", 302)])
        self.assertContains(page, "Recent runs")
        self.assertContains(self.client.get("/"), "Logged in as <strong>visitor</strong>")

    def test_expense_review_form_end_to_end_over_http(self):
        """The human step: the home page starts the run and opens its run page; the form is the
        action submit_review, described by actions-schema/ and submitted over HTTP."""
        self.client.force_login(User.objects.create_user("reviewer"))
        response = self.client.post("/runs/start/", {"workflow": "expense_approval"})
        run = WorkflowRun.objects.get(name="expense_approval")
        self.assertRedirects(response, f"/statezero/ui/runs/{run.pk}/")
        run = self.env.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
        self.assertEqual(run.current_step, "await_review")
        self.assertContains(
            self.client.get("/runs/table/"), f'<a class="action" href="/statezero/ui/runs/{run.pk}/">form submit_review'
        )

        api = APIClient()
        api.force_login(User.objects.get(username="reviewer"))
        schema = api.get("/statezero/actions-schema/submit_review/").json()
        self.assertEqual([f["name"] for f in schema["fields"]], ["reviewer_notes", "priority"])
        refused = api.post(
            "/statezero/actions/submit_review/", {"workflow_run_id": run.pk, "priority": "urgent"}, format="json"
        )
        self.assertEqual(refused.status_code, 400, refused.content)
        self.assertEqual(set(refused.json()), {"reviewer_notes", "priority"})
        answer = api.post(
            "/statezero/actions/submit_review/",
            {"workflow_run_id": run.pk, "reviewer_notes": "Receipts attached", "priority": "high"},
            format="json",
        )
        self.assertEqual(answer.status_code, 200, answer.content)
        self.assertEqual(answer.json()["status"], "completed")
        run = self.env.wait_until_finished(run)
        self.assertEqual(run.status, WorkflowStatus.COMPLETED, run.error)
        self.assertEqual(run.data, {"reviewer_notes": "Receipts attached", "priority": "high"})
        self.assertEqual(run.completion_display["display_title"], "Review Complete")

    def test_api_docs_page_and_raw_document(self):
        self.client.force_login(User.objects.create_user("reader"))
        docs = self.client.get("/statezero/docs/")
        self.assertEqual(docs.status_code, 200)
        self.assertContains(docs, "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
        raw = self.client.get("/statezero/schema/?format=json")
        self.assertEqual(raw.status_code, 200)
        self.assertIn("/statezero/actions/submit_review/", raw.json()["paths"])


class ShopEventTests(TransactionTestCase):
    """Model events: a reservation's saves trigger a callback and a run due before check-in."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A server of its own: its clock starts now, so check-in times are where the test puts them.
        cls.env = TemporalTestEnvironment(time_skipping=True)
        cls.env.start()

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()
        super().tearDownClass()

    def test_a_confirmed_reservation_is_welcomed_then_reminded_before_checkin(self):
        from django.utils import timezone

        from django_ai.automation.events.models import Event
        from django_ai.automation.workflows.models import WorkflowRun
        from facade.testing import wait_for
        from shop.models import Reservation

        checkin = timezone.now() + timedelta(hours=1)
        reservation = Reservation.objects.create(guest="Ada", checkin_at=checkin)
        reservation.status = "confirmed"
        reservation.save()
        confirmed = Event.objects.get(event_name="reservation_confirmed", entity_id=str(reservation.pk))
        self.env.wait_event_delivered(confirmed)
        reservation.refresh_from_db()
        self.assertTrue(reservation.welcome_sent)

        run = wait_for(lambda: WorkflowRun.objects.filter(name="PreArrivalReminder").first(), timeout=30)
        self.assertEqual(run.status, WorkflowStatus.WAITING)
        self.assertEqual(run.wake_at, checkin - timedelta(minutes=1))
        self.env.skip_time(timedelta(minutes=59, seconds=30))
        run = self.env.wait_until(run, lambda r: r.waiting_signal == "event:guest_docs_uploaded")
        reservation.docs_uploaded = True
        reservation.save()
        run = self.env.wait_until_finished(run)
        self.assertEqual(run.status, WorkflowStatus.COMPLETED, run.error)
        self.assertEqual(run.current_step, "docs_received")
        self.assertTrue(run.data["reminded"])

    def test_the_reservation_journey_agent_follows_a_stay(self):
        """The guide's reservation journey: spawned with the reservation, the confirmation, a claim
        on the guest's messages, timed pre-check-in and welcome, feedback after check-out."""
        from django_ai.automation.agents.core import AgentManager
        from facade.testing import wait_for
        from shop.models import GuestMessage, Reservation

        now = self.env.now()  # the server's clock: ahead of this machine's once a test skipped time
        reservation = Reservation.objects.create(
            guest="Ada", checkin_at=now + timedelta(hours=1), checkout_at=now + timedelta(hours=3)
        )
        journey = wait_for(lambda: AgentManager.list_active("reservation_journey").first(), timeout=30)
        self.assertEqual(journey.data["reservation_id"], reservation.pk)

        def sent() -> list[str]:
            return journey.__class__.objects.get(pk=journey.pk).data["sent"]

        before = GuestMessage.objects.create(reservation=reservation, text="Hello?")  # not claimed yet
        wait_for(lambda: GuestMessage.objects.get(pk=before.pk).answered_by == "auto-reply", timeout=30)

        reservation.status = "confirmed"
        reservation.save()
        wait_for(lambda: sent() == ["confirmation email"], timeout=30)
        claimed = GuestMessage.objects.create(reservation=reservation, text="Is there parking?")
        wait_for(lambda: GuestMessage.objects.get(pk=claimed.pk).answered_by == "concierge", timeout=30)
        # (its Context is saved as the handler returns: skip time only once it has)
        wait_for(lambda: len(sent()) == 2, timeout=30)

        self.env.skip_time(timedelta(minutes=59, seconds=30))
        wait_for(lambda: "pre-check-in SMS" in sent(), timeout=30)
        self.env.skip_time(timedelta(minutes=1))
        wait_for(lambda: "welcome message" in sent(), timeout=30)
        self.env.skip_time(timedelta(hours=2, minutes=2))
        wait_for(lambda: "feedback request" in sent(), timeout=30)
        self.assertEqual(
            sent(),
            [
                "confirmation email",
                f"concierge reply to message {claimed.pk}",
                "pre-check-in SMS",
                "welcome message",
                "feedback request",
            ],
        )
        after = GuestMessage.objects.create(reservation=reservation, text="Thanks!")  # released again
        wait_for(lambda: GuestMessage.objects.get(pk=after.pk).answered_by == "auto-reply", timeout=30)
        self.assertEqual(AgentManager.complete(journey).status, WorkflowStatus.COMPLETED)
