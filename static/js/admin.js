// Settings and the admin pages.
