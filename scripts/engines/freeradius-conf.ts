/**
 * The part of a private FreeRADIUS's radiusd.conf that puts everything under one temp dir (logs, run
 * files, module config): the bench's FreeRADIUS and the tests' upstream both start this way, and
 * neither reads or touches /etc/freeradius.
 */
export function radiusdPaths(dir: string): string {
  return `prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = ${dir}/log
raddbdir = ${dir}
radacctdir = ${dir}/log/radacct
name = freeradius
confdir = ${dir}
modconfdir = ${dir}/mods-config
run_dir = ${dir}/run
db_dir = ${dir}
libdir = /usr/lib/freeradius
pidfile = ${dir}/run/freeradius.pid
`;
}
