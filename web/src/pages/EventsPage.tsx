import { EventFeed } from "../features/events/EventFeed";

export function EventsPage() {
  return (
    <>
      <h1>Events</h1>
      <EventFeed />
    </>
  );
}
